// config.cpp — the key table (names, defaults, types), JSON parsing, overrides and validation.
#include "hgpt/config.h"

#include "hgpt/errors.h"
#include "hgpt/model/block_kinds.h"
#include "hgpt/model/hybrid_layer_pattern.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <type_traits>

namespace hgpt {

using nlohmann::json;

int64_t ModelConfig::count(char kind) const { return std::count(block_pattern.begin(), block_pattern.end(), kind); }

bool ModelConfig::checkpoints(char kind) const {
  if (activation_checkpointing == ActivationCheckpointing::All) return true;
  const auto* info = model::find_block_kind(kind);
  return info && activation_checkpointing != ActivationCheckpointing::None &&
         info->checkpoint_group == activation_checkpointing;
}

std::string Config::resolved_model_tag() const {
  return train.model_tag.empty() ? "d" + std::to_string(model.depth) : train.model_tag;
}

int64_t tokens_per_micro_step(const Config& c) { return c.train.device_batch_size * c.model.sequence_len; }

namespace {

// ---------------------------------------------------------------------------------------------
// The string keys with a fixed set of values: each enum's spellings, in the order errors list them.

template <class E>
using Spellings = std::vector<std::pair<E, const char*>>;

const Spellings<ActivationCheckpointing>& spellings(ActivationCheckpointing) {
  static const Spellings<ActivationCheckpointing> s = {{ActivationCheckpointing::None, "none"},
                                                       {ActivationCheckpointing::Mamba, "mamba"},
                                                       {ActivationCheckpointing::Transformer, "transformer"},
                                                       {ActivationCheckpointing::All, "all"}};
  return s;
}
const Spellings<NewtonSchulzDtype>& spellings(NewtonSchulzDtype) {
  static const Spellings<NewtonSchulzDtype> s = {
      {NewtonSchulzDtype::Auto, "auto"}, {NewtonSchulzDtype::BF16, "bf16"}, {NewtonSchulzDtype::FP32, "fp32"}};
  return s;
}
const Spellings<DeviceChoice>& spellings(DeviceChoice) {
  static const Spellings<DeviceChoice> s = {
      {DeviceChoice::Auto, "auto"}, {DeviceChoice::CPU, "cpu"}, {DeviceChoice::CUDA, "cuda"}};
  return s;
}

const Spellings<DocumentBoundaries>& spellings(DocumentBoundaries) {
  static const Spellings<DocumentBoundaries> s = {{DocumentBoundaries::Cross, "cross"},
                                                  {DocumentBoundaries::Reset, "reset"}};
  return s;
}

template <class E>
const char* spelling(E value) {
  for (const auto& [v, name] : spellings(E{}))
    if (v == value) return name;
  return "?";
}

// "\"a\", \"b\" or \"c\""
std::string quoted_list(const std::vector<std::string>& items, const char* last_sep = " or ") {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += i + 1 == items.size() ? last_sep : ", ";
    out += "\"" + items[i] + "\"";
  }
  return out;
}

}  // namespace

const char* to_string(ActivationCheckpointing value) { return spelling(value); }
const char* to_string(NewtonSchulzDtype value) { return spelling(value); }
const char* to_string(DeviceChoice value) { return spelling(value); }
const char* to_string(DocumentBoundaries value) { return spelling(value); }

DeviceChoice parse_device_choice(const std::string& text) {
  for (const auto& [value, spelled] : spellings(DeviceChoice{}))
    if (text == spelled) return value;
  throw UserError("device: must be \"auto\", \"cpu\" or \"cuda\", got \"" + text + "\"");
}

namespace {

void require(bool ok, const std::string& key, const std::string& problem) {
  if (!ok) throw UserError("config key '" + key + "': " + problem);
}

// ---------------------------------------------------------------------------------------------
// The key table: one entry per config key, with its JSON type, how to read/write it, its allowed
// values (string keys with a fixed set) and its one-line doc. The default is what a
// default-constructed Config holds.

enum class Kind { Int, UInt, Float, Bool, BoolOrAuto, String, Choice, Pattern };

std::string pattern_kind_text();

std::string kind_name(Kind k) {
  switch (k) {
    case Kind::Int:
      return "an integer";
    case Kind::UInt:
      return "a non-negative integer";
    case Kind::Float:
      return "a number";
    case Kind::Bool:
      return "true or false";
    case Kind::BoolOrAuto:
      return "true, false or \"auto\"";
    case Kind::String:
    case Kind::Choice:
      return "a string";
    case Kind::Pattern:
      return pattern_kind_text();
  }
  return "?";
}

struct KeySpec {
  std::string name;
  Kind kind = Kind::Int;
  std::function<json(const Config&)> get;
  std::function<void(Config&, const json&)> set;  // value already type-checked
  bool architecture = false;                      // the weights' shapes depend on it (architecture_keys)
  std::string doc;                                // one line
  std::vector<std::string> allowed;               // Kind::Choice: the spellings
  std::string shown_default;                      // the default as documented, when not its JSON value
};

// A key of the model section is an architecture key unless said otherwise.
template <class Section>
KeySpec key_of(const char* name, Kind kind, Section Config::*, const char* doc) {
  KeySpec spec;
  spec.name = name;
  spec.kind = kind;
  spec.architecture = std::is_same_v<Section, ModelConfig>;
  spec.doc = doc;
  return spec;
}

template <class Section, class T>
KeySpec make_key(const char* name, Kind kind, Section Config::*section, T Section::*field, const char* doc) {
  KeySpec spec = key_of(name, kind, section, doc);
  spec.get = [=](const Config& c) { return json((c.*section).*field); };
  spec.set = [=](Config& c, const json& v) { (c.*section).*field = v.get<T>(); };
  return spec;
}

// A string key parsed once into its enum; any other string is refused naming the allowed ones.
template <class Section, class E>
KeySpec make_choice(const char* name, Section Config::*section, E Section::*field, const char* doc) {
  std::vector<std::string> allowed;
  for (const auto& [value, spelled] : spellings(E{})) allowed.push_back(spelled);
  KeySpec spec = key_of(name, Kind::Choice, section, doc);
  spec.allowed = allowed;
  spec.get = [=](const Config& c) { return json(spelling((c.*section).*field)); };
  spec.set = [=](Config& c, const json& v) {
    const std::string text = v.get<std::string>();
    for (const auto& [value, spelled] : spellings(E{})) {
      if (text == spelled) {
        (c.*section).*field = value;
        return;
      }
    }
    require(false, name, "must be " + quoted_list(allowed) + ", got \"" + text + "\"");
  };
  return spec;
}

// `resume`: JSON true / false as before, or "auto" (torchrun --max-restarts: resume when a complete
// checkpoint is there, else start afresh).
KeySpec make_resume_key(TrainConfig Config::*section, const char* doc) {
  KeySpec spec = key_of("resume", Kind::BoolOrAuto, section, doc);
  spec.get = [=](const Config& c) {
    const ResumeMode mode = (c.*section).resume;
    return mode == ResumeMode::Auto ? json("auto") : json(mode == ResumeMode::On);
  };
  spec.set = [=](Config& c, const json& v) {
    (c.*section).resume = v.is_string() ? ResumeMode::Auto : v.get<bool>() ? ResumeMode::On : ResumeMode::Off;
  };
  return spec;
}

std::string resolve_pattern(const json& v);

const std::vector<KeySpec>& key_table() {
  using M = ModelConfig;
  using T = TrainConfig;
  static const std::vector<KeySpec> table = [] {
    std::vector<KeySpec> k;
    auto m = &Config::model;
    auto t = &Config::train;
    // model
    k.push_back(make_key("depth", Kind::Int, m, &M::depth, "number of blocks"));
    k.push_back(make_key("aspect_ratio", Kind::Int, m, &M::aspect_ratio, "model_dim = depth × aspect_ratio"));
    k.push_back(make_key("head_dim", Kind::Int, m, &M::head_dim, "n_head = ceil(model_dim / head_dim)"));
    k.push_back(make_key("n_kv_head", Kind::Int, m, &M::n_kv_head, "key/value heads for GQA; -1 = n_head"));
    k.push_back(make_key("vocab_size", Kind::Int, m, &M::vocab_size, "at least the tokenizer's vocabulary"));
    k.push_back(make_key("max_seq_len", Kind::Int, m, &M::sequence_len, "training sequence length"));
    k.back().architecture = false;  // no weight depends on it: the rotary tables are computed per forward
    KeySpec pattern;
    pattern.name = "block_pattern";
    pattern.kind = Kind::Pattern;
    pattern.get = [](const Config& c) {
      json list = json::array();
      for (char ch : c.model.block_pattern) list.push_back(std::string(1, ch));
      return c.model.block_pattern.empty() ? json(nullptr) : list;
    };
    pattern.set = [](Config& c, const json& v) { c.model.block_pattern = resolve_pattern(v); };
    pattern.architecture = true;
    pattern.doc = "one block kind per layer; null: all T";
    k.push_back(pattern);
    k.push_back(make_key("hybrid_layer_pattern", Kind::String, m, &M::hybrid_layer_pattern,
                         "Megatron-LM's layers: M Mamba-2, * attention, - MLP"));
    k.back().architecture = false;  // it resolves into block_pattern and depth, which are
    k.push_back(make_key("hybrid_attention_ratio", Kind::Float, m, &M::hybrid_attention_ratio,
                         "attention share of depth, Megatron-LM's allocation; -1: unused"));
    k.back().architecture = false;
    k.push_back(make_key("hybrid_mlp_ratio", Kind::Float, m, &M::hybrid_mlp_ratio,
                         "MLP share of depth, Megatron-LM's allocation; -1: unused"));
    k.back().architecture = false;
    k.push_back(make_key("attn_window", Kind::Int, m, &M::attn_window,
                         "positions an S layer's query sees; -1: max_seq_len/4, up to a multiple of 128"));
    k.back().architecture = false;  // no weight depends on it
    k.push_back(make_key("window_pattern", Kind::String, m, &M::window_pattern,
                         "S/L tiled over the T and S layers, last L; \"\": none"));
    k.back().architecture = false;  // it resolves into block_pattern, which is
    k.push_back(make_key("mamba_d_state", Kind::Int, m, &M::mamba_d_state, "Mamba's SSM state size, 1..64"));
    k.push_back(make_key("mamba_d_conv", Kind::Int, m, &M::mamba_d_conv, "causal conv width of Mamba 1 and 2, 2..4"));
    k.push_back(
        make_key("mamba_expand", Kind::Int, m, &M::mamba_expand, "d_inner = expand × model_dim (Mamba 1 and 2)"));
    k.push_back(make_key("mamba_use_mlp", Kind::Bool, m, &M::mamba_use_mlp, "an MLP after each Mamba (1 or 2) mixer"));
    k.push_back(make_key("mamba2_d_state", Kind::Int, m, &M::mamba2_d_state, "Mamba-2's SSM state size, 1..256"));
    k.push_back(make_key("mamba2_headdim", Kind::Int, m, &M::mamba2_headdim,
                         "Mamba-2's head size; nheads = d_inner / headdim"));
    k.push_back(make_key("mamba2_ngroups", Kind::Int, m, &M::mamba2_ngroups, "Mamba-2's B/C groups; divides nheads"));
    k.push_back(make_key("mamba2_chunk_size", Kind::Int, m, &M::mamba2_chunk_size, "Mamba-2's scan chunk, 1..1024"));
    k.back().architecture = false;  // the chunking changes rounding only, never a weight
    k.push_back(make_choice("activation_checkpointing", m, &M::activation_checkpointing,
                            "which blocks recompute their activations in backward"));
    k.back().architecture = false;  // changes what backward recomputes, never a weight: a resume may change it
    k.push_back(make_choice("document_boundaries", m, &M::document_boundaries,
                            "cross: packed documents see each other; reset: every block restarts at each BOS"));
    k.back().architecture = false;  // a mask, never a weight
    k.push_back(make_key("bos_token_id", Kind::Int, m, &M::bos_token_id,
                         "the token that starts a document (reset); -1: the data's <|bos|>"));
    k.back().architecture = false;
    // runtime
    k.push_back(make_choice("device", t, &T::device, "auto: CUDA when present"));
    k.push_back(make_key("data", Kind::String, t, &T::data, "\"synthetic\" or a directory of token shards"));
    k.push_back(make_key("tokenizer", Kind::String, t, &T::tokenizer, "a tokenizer directory"));
    k.push_back(make_key("out_dir", Kind::String, t, &T::out_dir, "runs go to <out_dir>/<model_tag>/"));
    k.push_back(make_key("model_tag", Kind::String, t, &T::model_tag, "the run's folder name"));
    k.back().shown_default = "d<depth>";
    k.push_back(make_key("seed", Kind::UInt, t, &T::seed, "init and training-data order"));
    k.push_back(make_key("val_seed", Kind::UInt, t, &T::val_seed, "the built-in corpus's validation rows"));
    // batch and horizon
    k.push_back(
        make_key("device_batch_size", Kind::Int, t, &T::device_batch_size, "sequences per micro-step per rank"));
    k.push_back(
        make_key("total_batch_size", Kind::Int, t, &T::total_batch_size, "tokens per optimizer step, all ranks"));
    k.push_back(make_key("num_iterations", Kind::Int, t, &T::num_iterations, "steps; -1: derived"));
    k.push_back(make_key("target_flops", Kind::Float, t, &T::target_flops, "total training FLOPs"));
    k.push_back(
        make_key("target_param_data_ratio", Kind::Float, t, &T::target_param_data_ratio, "tokens per parameter"));
    // optimisation
    k.push_back(make_key("embedding_lr", Kind::Float, t, &T::embedding_lr, "AdamW lr of wte"));
    k.push_back(make_key("unembedding_lr", Kind::Float, t, &T::unembedding_lr, "AdamW lr of lm_head"));
    k.push_back(make_key("matrix_lr", Kind::Float, t, &T::matrix_lr, "Muon lr of the block matrices"));
    k.push_back(make_key("mamba_lr", Kind::Float, t, &T::mamba_lr, "AdamW lr of the blocks' small tensors"));
    k.push_back(make_key("weight_decay", Kind::Float, t, &T::weight_decay, "AdamW weight decay of wte and lm_head"));
    k.push_back(make_key("grad_clip", Kind::Float, t, &T::grad_clip, "gradient-norm clip; <= 0 disables"));
    k.push_back(make_key("warmup_ratio", Kind::Float, t, &T::warmup_ratio, "fraction of steps of warmup"));
    k.push_back(make_key("warmdown_ratio", Kind::Float, t, &T::warmdown_ratio, "fraction of steps of warmdown"));
    k.push_back(make_key("final_lr_frac", Kind::Float, t, &T::final_lr_frac, "lr multiplier at the end"));
    k.push_back(make_choice("newton_schulz_dtype", t, &T::newton_schulz_dtype,
                            "Muon's Newton-Schulz dtype; auto: bf16 where the hardware has it"));
    // evaluation, logging, checkpoints
    k.push_back(make_key("eval_every", Kind::Int, t, &T::eval_every, "steps between evaluations; <= 0: at the end"));
    k.push_back(make_key("eval_tokens", Kind::Int, t, &T::eval_tokens, "validation tokens per evaluation"));
    k.push_back(make_key("extrapolate_to", Kind::Int, t, &T::extrapolate_to,
                         "final evaluations at 2×, 4×, ... this × max_seq_len; 1: none"));
    k.push_back(make_key("sample_every", Kind::Int, t, &T::sample_every, "steps between samples; <= 0: never"));
    k.push_back(make_key("log_every", Kind::Int, t, &T::log_every, "steps between printed log lines"));
    k.push_back(make_key("save_every", Kind::Int, t, &T::save_every, "steps between checkpoints; <= 0: at the end"));
    k.push_back(make_resume_key(t, "true: continue from the newest checkpoint; auto: if there is one"));
    k.push_back(
        make_key("overwrite", Kind::Bool, t, &T::overwrite, "a fresh run may delete another run's checkpoints"));
    k.push_back(make_key("peak_flops", Kind::Float, t, &T::peak_flops, "peak FLOP/s per device for MFU"));
    // distributed
    k.push_back(make_key("dist_timeout_s", Kind::Int, t, &T::dist_timeout_s, "bound on every collective"));
    k.push_back(make_key("gloo_interface", Kind::String, t, &T::gloo_interface, "network interface for Gloo"));
    return k;
  }();
  return table;
}

// ---------------------------------------------------------------------------------------------
// Helpers for error messages

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

[[noreturn]] void unknown_key(const std::string& key, const std::string& where) {
  std::string best;
  size_t best_d = SIZE_MAX;
  for (const auto& spec : key_table()) {
    size_t d = edit_distance(key, spec.name);
    if (d < best_d) best_d = d, best = spec.name;
  }
  std::string msg = where + "unknown key '" + key + "'";
  if (best_d <= std::max<size_t>(3, key.size() / 3)) msg += "; did you mean '" + best + "'?";
  msg += " (README.md lists every key)";
  throw UserError(msg);
}

const KeySpec& find_key(const std::string& key, const std::string& where) {
  for (const auto& spec : key_table())
    if (spec.name == key) return spec;
  unknown_key(key, where);
}

// The pattern's spellings, from the block-kind registry: "\"T\"/\"transformer\" or \"M\"/\"mamba\"".
std::string pattern_entries_text() {
  std::vector<std::string> kinds;
  for (const auto& kind : model::block_kinds()) kinds.push_back(kind.short_name + "\"/\"" + kind.name);
  return quoted_list(kinds);
}

std::string pattern_symbols_text() {
  std::vector<std::string> symbols;
  for (const auto& kind : model::block_kinds()) symbols.push_back(std::string(1, kind.symbol));
  return quoted_list(symbols);
}

std::string pattern_kind_text() {
  std::vector<std::string> spelled;
  for (const auto& kind : model::block_kinds()) spelled.push_back(kind.short_name);
  for (const auto& kind : model::block_kinds()) spelled.push_back(kind.name);
  std::string example;
  for (const auto& kind : model::block_kinds()) example += std::string(2, kind.symbol);
  std::string list;
  for (const auto& s : spelled) list += (list.empty() ? "\"" : "/\"") + s + "\"";
  return "null, a list of " + list + ", or a string like \"" + example + "\"";
}

std::string resolve_pattern(const json& v) {
  if (v.is_null()) return "";
  std::string out;
  auto entry = [&](const std::string& raw) {
    if (const auto* kind = model::find_block_kind(raw)) return kind->symbol;
    throw UserError("block_pattern: unknown entry '" + raw + "'; allowed: " + pattern_entries_text() +
                    " (case-insensitive)");
  };
  if (v.is_string()) {
    for (char ch : v.get<std::string>()) out += entry(std::string(1, ch));
  } else {
    for (const auto& e : v) {
      if (!e.is_string())
        throw UserError("block_pattern: entry " + e.dump() + " is not a string; allowed: " + pattern_symbols_text());
      out += entry(e.get<std::string>());
    }
  }
  // Only null means "all T": an empty string or list is more likely a mistake than a request.
  if (out.empty())
    throw UserError("block_pattern: empty; give one " + pattern_symbols_text() +
                    " per layer (e.g. \"TMTM\"), or null for all T");
  return out;
}

bool type_ok(Kind kind, const json& v) {
  switch (kind) {
    // An unsigned JSON number above INT64_MAX would wrap around in get<int64_t>().
    case Kind::Int:
      return v.is_number_integer() && !(v.is_number_unsigned() && v.get<uint64_t>() > INT64_MAX);
    case Kind::UInt:
      return v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0);
    case Kind::Float:
      return v.is_number();
    case Kind::Bool:
      return v.is_boolean();
    case Kind::BoolOrAuto:
      return v.is_boolean() || (v.is_string() && v.get<std::string>() == "auto");
    case Kind::String:
    case Kind::Choice:
      return v.is_string();
    case Kind::Pattern:
      return v.is_null() || v.is_string() || v.is_array();
  }
  return false;
}

void apply_key(Config& config, const std::string& key, const json& value, const std::string& where) {
  const KeySpec& spec = find_key(key, where);
  if (!type_ok(spec.kind, value)) {
    throw UserError(where + "key '" + key + "' must be " + kind_name(spec.kind) + ", got " + value.dump());
  }
  spec.set(config, value);
}

// Byte offset → "line L, column C" for parse errors.
std::string line_column(const std::string& text, size_t byte) {
  size_t line = 1, col = 1;
  for (size_t i = 0; i < std::min(byte, text.size()); ++i) {
    if (text[i] == '\n')
      ++line, col = 1;
    else
      ++col;
  }
  return "line " + std::to_string(line) + ", column " + std::to_string(col > 1 ? col - 1 : col);
}

// ---------------------------------------------------------------------------------------------
// Upper bounds. Far above any model this trainer is meant for, and low enough that every size and
// estimate derived from the config (parameters, bytes, FLOPs, tokens per micro-step) is exact in
// int64: the largest, the logits' activation bytes, stays below 2^61.

constexpr int64_t kMaxDepth = 1024;
constexpr int64_t kMaxModelDim = 65536;                // depth × aspect_ratio, and head_dim
constexpr int64_t kMaxMicroTokens = int64_t{1} << 24;  // device_batch_size × max_seq_len
constexpr int64_t kMaxMambaExpand = 16;
constexpr int64_t kMaxTimeoutSeconds = 1000000;  // ~11.6 days; milliseconds stay far from overflow
constexpr double kMaxFloat = 1e30;               // fp32 optimizer math overflows near 3.4e38

void at_most(int64_t v, int64_t limit, const char* key, const std::string& what = "") {
  require(v <= limit, key, "must be at most " + std::to_string(limit) + what + ", got " + std::to_string(v));
}

// The learning rates and the weight decay: non-negative numbers.
std::vector<std::pair<double, const char*>> learning_rate_and_decay(const TrainConfig& t) {
  return {{t.embedding_lr, "embedding_lr"},
          {t.unembedding_lr, "unembedding_lr"},
          {t.matrix_lr, "matrix_lr"},
          {t.mamba_lr, "mamba_lr"},
          {t.weight_decay, "weight_decay"}};
}

void check_upper_bounds(const Config& c) {
  const ModelConfig& m = c.model;
  const TrainConfig& t = c.train;
  at_most(m.depth, kMaxDepth, "depth");
  at_most(m.aspect_ratio, kMaxModelDim, "aspect_ratio");
  at_most(m.head_dim, kMaxModelDim, "head_dim");
  at_most(m.model_dim(), kMaxModelDim, "aspect_ratio", " for model_dim = depth × aspect_ratio");
  at_most(m.vocab_size, kMaxVocabSize, "vocab_size");
  at_most(m.sequence_len, kMaxSeqLen, "max_seq_len");
  at_most(m.mamba_expand, kMaxMambaExpand, "mamba_expand");
  at_most(t.device_batch_size, kMaxMicroTokens, "device_batch_size");
  at_most(tokens_per_micro_step(c), kMaxMicroTokens, "device_batch_size",
          " tokens per micro-step (device_batch_size × max_seq_len)");
  at_most(t.num_iterations, kMaxIterations, "num_iterations");
  at_most(t.dist_timeout_s, kMaxTimeoutSeconds, "dist_timeout_s");
  at_most(t.eval_tokens, kMaxEvalTokens, "eval_tokens", " (about 17 billion)");
  auto bounded = learning_rate_and_decay(t);
  for (auto extra : {std::pair{t.grad_clip, "grad_clip"},
                     {t.target_flops, "target_flops"},
                     {t.target_param_data_ratio, "target_param_data_ratio"},
                     {t.peak_flops, "peak_flops"}}) {
    bounded.push_back(extra);
  }
  for (auto [v, key] : bounded) {
    require(std::fabs(v) <= kMaxFloat, key,
            "must be a number of magnitude at most 1e30 (fp32 overflows), got " + json(v).dump());
  }
}

}  // namespace

std::vector<std::string> config_keys() {
  std::vector<std::string> keys;
  for (const auto& spec : key_table()) keys.push_back(spec.name);
  return keys;
}

std::vector<ConfigKeyDoc> config_key_docs() {
  const Config defaults;
  std::vector<ConfigKeyDoc> docs;
  for (const auto& spec : key_table()) {
    docs.push_back({spec.name, spec.shown_default.empty() ? spec.get(defaults).dump() : spec.shown_default,
                    spec.allowed, spec.doc});
  }
  return docs;
}

std::vector<std::string> architecture_keys() {
  std::vector<std::string> keys;
  for (const auto& spec : key_table()) {
    if (spec.architecture) keys.push_back(spec.name);
  }
  return keys;
}

json Config::to_json() const {
  json out = json::object();
  for (const auto& spec : key_table()) out[spec.name] = spec.get(*this);
  return out;
}

int64_t grad_accum_steps(const Config& c, int world_size) {
  const int64_t per_step = tokens_per_micro_step(c) * world_size;
  require(c.train.total_batch_size > 0 && c.train.total_batch_size % per_step == 0, "total_batch_size",
          std::to_string(c.train.total_batch_size) +
              " must be a positive multiple of device_batch_size × max_seq_len × world_size = " +
              std::to_string(c.train.device_batch_size) + " × " + std::to_string(c.model.sequence_len) + " × " +
              std::to_string(world_size) + " = " + std::to_string(per_step));
  return c.train.total_batch_size / per_step;
}

// Mamba-2's keys: their ranges always, the head and group split only when the pattern has M2 layers.
void check_mamba2(const ModelConfig& m) {
  require(m.mamba2_d_state >= 1 && m.mamba2_d_state <= 256, "mamba2_d_state",
          "must be in 1..256, got " + std::to_string(m.mamba2_d_state));
  require(m.mamba2_headdim >= 1, "mamba2_headdim",
          "must be a positive integer, got " + std::to_string(m.mamba2_headdim));
  require(m.mamba2_ngroups >= 1, "mamba2_ngroups",
          "must be a positive integer, got " + std::to_string(m.mamba2_ngroups));
  require(m.mamba2_chunk_size >= 1 && m.mamba2_chunk_size <= 1024, "mamba2_chunk_size",
          "must be in 1..1024 (each chunk holds Q × Q decay masks), got " + std::to_string(m.mamba2_chunk_size));
  if (m.count('2') == 0) return;
  const int64_t d_inner = m.mamba_expand * m.model_dim();
  require(d_inner % m.mamba2_headdim == 0, "mamba2_headdim",
          "d_inner = mamba_expand × model_dim = " + std::to_string(d_inner) + " is not divisible by mamba2_headdim " +
              std::to_string(m.mamba2_headdim) + "; choose a headdim that divides it");
  const int64_t nheads = d_inner / m.mamba2_headdim;
  require(nheads % m.mamba2_ngroups == 0, "mamba2_ngroups",
          "nheads = d_inner / mamba2_headdim = " + std::to_string(nheads) + " is not divisible by mamba2_ngroups " +
              std::to_string(m.mamba2_ngroups) + "; choose a divisor of " + std::to_string(nheads));
}

void validate(const Config& c, int world_size) {
  const ModelConfig& m = c.model;
  const TrainConfig& t = c.train;
  auto positive = [](int64_t v, const char* key) {
    require(v > 0, key, "must be a positive integer, got " + std::to_string(v));
  };
  positive(m.depth, "depth");
  positive(m.aspect_ratio, "aspect_ratio");
  positive(m.head_dim, "head_dim");
  positive(m.vocab_size, "vocab_size");
  positive(m.sequence_len, "max_seq_len");
  positive(t.device_batch_size, "device_batch_size");
  positive(t.eval_tokens, "eval_tokens");
  positive(t.log_every, "log_every");
  positive(t.dist_timeout_s, "dist_timeout_s");
  positive(m.mamba_expand, "mamba_expand");
  check_upper_bounds(c);
  require(t.extrapolate_to >= 1 && t.extrapolate_to <= 64 && (t.extrapolate_to & (t.extrapolate_to - 1)) == 0,
          "extrapolate_to",
          "must be a power of two from 1 (no longer evaluations) to 64, got " + std::to_string(t.extrapolate_to));
  require(t.extrapolate_to == 1 || m.sequence_len * t.extrapolate_to <= kMaxSeqLen, "extrapolate_to",
          std::to_string(t.extrapolate_to) + " × max_seq_len " + std::to_string(m.sequence_len) +
              " passes the longest sequence, " + std::to_string(kMaxSeqLen) + "; choose a smaller multiple");

  require(static_cast<int64_t>(m.block_pattern.size()) == m.depth, "block_pattern",
          "has " + std::to_string(m.block_pattern.size()) + " entries but depth is " + std::to_string(m.depth) +
              "; give one " + pattern_symbols_text() + " per layer (or null for all T)");
  const int64_t dim = m.model_dim(), heads = m.n_head();
  require(dim % heads == 0, "head_dim",
          "model_dim " + std::to_string(dim) + " (depth × aspect_ratio) is not divisible by n_head " +
              std::to_string(heads) +
              " = ceil(model_dim / head_dim); choose depth, aspect_ratio or head_dim so it divides");
  require(m.attn_head_dim() % 2 == 0, "head_dim",
          "the attention head size " + std::to_string(m.attn_head_dim()) + " must be even (rotary embeddings)");
  if (m.n_kv_head != -1) {
    require(m.n_kv_head > 0 && heads % m.n_kv_head == 0, "n_kv_head",
            "must be -1 (same as n_head) or a positive divisor of n_head = " + std::to_string(heads) + ", got " +
                std::to_string(m.n_kv_head));
  }
  require(m.mamba_d_state >= 1 && m.mamba_d_state <= 64, "mamba_d_state",
          "must be in 1..64 (the scan kernels hold the state in registers), got " + std::to_string(m.mamba_d_state));
  require(m.mamba_d_conv >= 2 && m.mamba_d_conv <= 4, "mamba_d_conv",
          "must be in 2..4 (Mamba's causal depthwise convolution), got " + std::to_string(m.mamba_d_conv));
  check_mamba2(m);
  require(m.bos_token_id >= -1 && m.bos_token_id < m.vocab_size, "bos_token_id",
          "must be -1 (the data's <|bos|>: 256 for the built-in corpus, the tokenizer's for token shards) or a "
          "token id below vocab_size " +
              std::to_string(m.vocab_size) + ", got " + std::to_string(m.bos_token_id));
  require(m.attn_window >= 1 && m.attn_window <= kMaxSeqLen, "attn_window",
          "must be -1 (a quarter of max_seq_len, rounded up to a multiple of 128) or 1.." + std::to_string(kMaxSeqLen) +
              " positions, got " + std::to_string(m.attn_window));
  require(!t.data.empty(), "data", "must be \"synthetic\" or a directory of token shards");
  require(!t.out_dir.empty(), "out_dir", "must not be empty");
  require(t.model_tag.find('/') == std::string::npos && t.model_tag != "." && t.model_tag != "..", "model_tag",
          "must not contain '/' or be \".\" or \"..\" (it names a folder inside out_dir), got \"" + t.model_tag + "\"");
  for (auto [v, key] : learning_rate_and_decay(t)) {
    require(v >= 0, key, "must be >= 0, got " + std::to_string(v));
  }
  for (auto [v, key] : {std::pair{t.warmup_ratio, "warmup_ratio"},
                        {t.warmdown_ratio, "warmdown_ratio"},
                        {t.final_lr_frac, "final_lr_frac"}}) {
    require(v >= 0 && v <= 1, key, "must be in [0, 1], got " + std::to_string(v));
  }
  require(t.warmup_ratio + t.warmdown_ratio <= 1, "warmdown_ratio", "warmup_ratio + warmdown_ratio must be <= 1");
  require(t.num_iterations == -1 || t.num_iterations > 0, "num_iterations",
          "must be -1 (derive from target_flops or target_param_data_ratio) or positive");
  require(t.num_iterations > 0 || t.target_flops > 0 || t.target_param_data_ratio > 0, "target_param_data_ratio",
          "one of num_iterations, target_flops, target_param_data_ratio must be positive");
  grad_accum_steps(c, world_size);
}

// ---------------------------------------------------------------------------------------------
// The layers: block_pattern, or Megatron-LM's string or ratios, then the windows of the attention
// layers. A saved config holds both the keys given and what they resolved to, so given together
// they must agree.

namespace {

// Megatron-LM's string from hybrid_layer_pattern or the ratios, or "" when neither is given.
std::string megatron_layers(ModelConfig& m, const std::set<std::string>& given) {
  const bool ratios = m.hybrid_attention_ratio != -1 || m.hybrid_mlp_ratio != -1;
  const double attention = std::max(0.0, m.hybrid_attention_ratio), mlp = std::max(0.0, m.hybrid_mlp_ratio);
  if (ratios) {
    for (auto [v, key] :
         {std::pair{m.hybrid_attention_ratio, "hybrid_attention_ratio"}, {m.hybrid_mlp_ratio, "hybrid_mlp_ratio"}}) {
      require(v == -1 || (v >= 0 && v <= 1), key, "must be in [0, 1] (or -1: unused), got " + json(v).dump());
    }
    require(attention + mlp <= 1, "hybrid_mlp_ratio",
            "hybrid_attention_ratio + hybrid_mlp_ratio must be at most 1 (the rest are Mamba-2 layers), got " +
                json(attention + mlp).dump());
  }
  const std::string& text = m.hybrid_layer_pattern;
  if (text.empty()) {
    if (!ratios || m.depth < 1 || m.depth > kMaxDepth) return "";  // validate() reports a bad depth
    return model::allocate_hybrid_layers(m.depth, attention, mlp);
  }
  const int64_t layers = static_cast<int64_t>(text.size());
  require(model::block_pattern_from_megatron(text).has_value(), "hybrid_layer_pattern",
          "takes Megatron-LM's symbols M (Mamba-2), * (attention) and - (MLP), one per layer, got \"" + text + "\"");
  require(!given.count("depth") || m.depth == layers, "depth",
          "is " + std::to_string(m.depth) + " but hybrid_layer_pattern has " + std::to_string(layers) +
              " layers; leave depth out (the string's length is the depth)");
  m.depth = layers;
  if (ratios) {
    // As Megatron-LM checks an override pattern against the ratios: the same count of each kind.
    const std::string allocated = model::allocate_hybrid_layers(layers, attention, mlp);
    for (char kind : {'*', '-'}) {
      require(std::count(text.begin(), text.end(), kind) == std::count(allocated.begin(), allocated.end(), kind),
              "hybrid_layer_pattern",
              "\"" + text + "\" does not have the counts of attention and MLP layers the ratios give (\"" + allocated +
                  "\"); fix the string or leave the ratios out");
    }
  }
  return text;
}

// window_pattern over the T and S layers (the last one always full, as nanochat's last layer).
void apply_window_pattern(ModelConfig& m) {
  const std::string& w = m.window_pattern;
  if (w.empty()) return;
  require(std::all_of(w.begin(), w.end(),
                      [](char ch) {
                        return std::toupper(static_cast<unsigned char>(ch)) == 'S' ||
                               std::toupper(static_cast<unsigned char>(ch)) == 'L';
                      }),
          "window_pattern",
          "takes S (sliding window) and L (full attention) letters, like \"SSSL\", got \"" + w + "\"");
  std::vector<size_t> attention;
  for (size_t i = 0; i < m.block_pattern.size(); ++i) {
    if (m.block_pattern[i] == 'T' || m.block_pattern[i] == 'S') attention.push_back(i);
  }
  require(!attention.empty(), "window_pattern",
          "tiles over the T and S layers, but block_pattern has none; leave it out or add T layers");
  for (size_t k = 0; k < attention.size(); ++k) {
    const bool windowed = std::toupper(static_cast<unsigned char>(w[k % w.size()])) == 'S';
    m.block_pattern[attention[k]] = windowed && k + 1 < attention.size() ? 'S' : 'T';
  }
}

void resolve_layers(ModelConfig& m, const std::set<std::string>& given) {
  const std::string megatron = megatron_layers(m, given);
  if (!megatron.empty()) {
    const std::string ours = *model::block_pattern_from_megatron(megatron);
    require(m.block_pattern.empty() || m.block_pattern == ours, "block_pattern",
            "differs from the layers of hybrid_layer_pattern or the hybrid ratios (\"" + megatron +
                "\"); give one or the other");
    require(!m.mamba_use_mlp, "mamba_use_mlp",
            "must be false with Megatron-LM's layers: its M is a Mamba-2 mixer alone, its MLPs are the - layers");
    m.block_pattern = ours;
  }
  // null block_pattern: all T (validate() reports a depth out of range before the pattern).
  if (m.block_pattern.empty() && m.depth > 0 && m.depth <= kMaxDepth) m.block_pattern.assign(m.depth, 'T');
  apply_window_pattern(m);
  // nanochat's short window: a quarter of the sequence, rounded up to a multiple of 128.
  if (m.attn_window == -1 && m.sequence_len > 0) m.attn_window = ((m.sequence_len + 3) / 4 + 127) / 128 * 128;
}

}  // namespace

Config config_from_json(const json& object, const std::vector<std::string>& overrides, int world_size) {
  if (!object.is_object()) throw UserError("config: the top level must be a JSON object of key: value");
  Config config;
  std::set<std::string> given;
  for (const auto& [key, value] : object.items()) {
    apply_key(config, key, value, "config: ");
    given.insert(key);
  }
  for (const auto& item : overrides) {
    const auto eq = item.find('=');
    std::string key = item.substr(0, eq);
    const std::string where = "override --" + item + ": ";
    json value;
    if (eq == std::string::npos) {
      // A bare --flag means true for boolean keys.
      const Kind kind = find_key(key, where).kind;
      if (kind != Kind::Bool && kind != Kind::BoolOrAuto) throw UserError(where + "expected --" + key + "=VALUE");
      value = true;
    } else {
      const std::string text = item.substr(eq + 1);
      value = json::parse(text, nullptr, /*allow_exceptions=*/false);
      if (value.is_discarded()) value = text;  // not JSON: a plain string such as a path or "TTMM"
      // A string key keeps digits as its text: --block_pattern=2222 (all Mamba-2), --model_tag=123.
      const Kind kind = find_key(key, where).kind;
      if ((kind == Kind::String || kind == Kind::Pattern) && (value.is_number() || value.is_boolean())) value = text;
      // Command-line bytes need not be UTF-8, but JSON strings (and so to_json(), meta files) must.
      try {
        (void)value.dump();
      } catch (const json::type_error&) {
        throw UserError("override --" + key + ": the value is not valid UTF-8");
      }
    }
    apply_key(config, key, value, where);
    given.insert(key);
  }
  resolve_layers(config.model, given);
  validate(config, world_size);
  return config;
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides, int world_size) {
  std::ifstream in(path);
  if (!in) throw UserError("config: cannot read '" + path + "' (no such file or not readable)");
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  json object;
  try {
    object = json::parse(text);
  } catch (const json::parse_error& e) {
    throw UserError("config: '" + path + "' is not valid JSON at " + line_column(text, e.byte) + ": " + e.what());
  } catch (const json::exception& e) {  // e.g. a number beyond double range such as 1e400
    throw UserError("config: '" + path + "' cannot be read as JSON: " + e.what());
  }
  try {
    return config_from_json(object, overrides, world_size);
  } catch (const UserError& e) {
    throw UserError(path + ": " + e.what());
  }
}

}  // namespace hgpt
