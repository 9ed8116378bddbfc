// config.cpp — the key table (names, defaults, types), JSON parsing, overrides and validation.
#include "hgpt/config.h"

#include "hgpt/errors.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <functional>
#include <sstream>
#include <type_traits>

namespace hgpt {

using nlohmann::json;

int64_t ModelConfig::count(char kind) const {
  return std::count(block_pattern.begin(), block_pattern.end(), kind);
}

bool ModelConfig::checkpoints(char kind) const {
  const auto& a = activation_checkpointing;
  return a == "all" || (kind == 'T' && a == "transformer") || (kind == 'M' && a == "mamba");
}

std::string Config::resolved_model_tag() const {
  return train.model_tag.empty() ? "d" + std::to_string(model.depth) : train.model_tag;
}

namespace {

// ---------------------------------------------------------------------------------------------
// The key table: one entry per config key, with its JSON type and how to read/write it.

enum class Kind { Int, UInt, Float, Bool, String, Pattern };

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::Int: return "an integer";
    case Kind::UInt: return "a non-negative integer";
    case Kind::Float: return "a number";
    case Kind::Bool: return "true or false";
    case Kind::String: return "a string";
    case Kind::Pattern: return "null, a list of \"T\"/\"M\"/\"transformer\"/\"mamba\", or a string like \"TTMM\"";
  }
  return "?";
}

struct KeySpec {
  std::string name;
  Kind kind;
  std::function<json(const Config&)> get;
  std::function<void(Config&, const json&)> set;  // value already type-checked
  bool architecture = false;  // the weights' shapes depend on it (architecture_keys)
};

// A key of the model section is an architecture key unless said otherwise.
template <class Section, class T>
KeySpec make_key(const char* name, Kind kind, Section Config::*section, T Section::*field) {
  return KeySpec{name, kind,
                 [=](const Config& c) { return json((c.*section).*field); },
                 [=](Config& c, const json& v) { (c.*section).*field = v.get<T>(); },
                 std::is_same_v<Section, ModelConfig>};
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
    k.push_back(make_key("depth", Kind::Int, m, &M::depth));
    k.push_back(make_key("aspect_ratio", Kind::Int, m, &M::aspect_ratio));
    k.push_back(make_key("head_dim", Kind::Int, m, &M::head_dim));
    k.push_back(make_key("n_kv_head", Kind::Int, m, &M::n_kv_head));
    k.push_back(make_key("vocab_size", Kind::Int, m, &M::vocab_size));
    k.push_back(make_key("max_seq_len", Kind::Int, m, &M::sequence_len));
    k.back().architecture = false;  // no weight depends on it: the rotary tables are computed per forward
    k.push_back(KeySpec{"block_pattern", Kind::Pattern,
                        [](const Config& c) {
                          json list = json::array();
                          for (char ch : c.model.block_pattern) list.push_back(std::string(1, ch));
                          return c.model.block_pattern.empty() ? json(nullptr) : list;
                        },
                        [](Config& c, const json& v) { c.model.block_pattern = resolve_pattern(v); },
                        /*architecture=*/true});
    k.push_back(make_key("mamba_d_state", Kind::Int, m, &M::mamba_d_state));
    k.push_back(make_key("mamba_d_conv", Kind::Int, m, &M::mamba_d_conv));
    k.push_back(make_key("mamba_expand", Kind::Int, m, &M::mamba_expand));
    k.push_back(make_key("mamba_use_mlp", Kind::Bool, m, &M::mamba_use_mlp));
    k.push_back(make_key("activation_checkpointing", Kind::String, m, &M::activation_checkpointing));
    k.back().architecture = false;  // changes what backward recomputes, never a weight: a resume may change it
    // runtime
    k.push_back(make_key("device", Kind::String, t, &T::device));
    k.push_back(make_key("data", Kind::String, t, &T::data));
    k.push_back(make_key("tokenizer", Kind::String, t, &T::tokenizer));
    k.push_back(make_key("out_dir", Kind::String, t, &T::out_dir));
    k.push_back(make_key("model_tag", Kind::String, t, &T::model_tag));
    k.push_back(make_key("seed", Kind::UInt, t, &T::seed));
    // batch and horizon
    k.push_back(make_key("device_batch_size", Kind::Int, t, &T::device_batch_size));
    k.push_back(make_key("total_batch_size", Kind::Int, t, &T::total_batch_size));
    k.push_back(make_key("num_iterations", Kind::Int, t, &T::num_iterations));
    k.push_back(make_key("target_flops", Kind::Float, t, &T::target_flops));
    k.push_back(make_key("target_param_data_ratio", Kind::Float, t, &T::target_param_data_ratio));
    // optimisation
    k.push_back(make_key("embedding_lr", Kind::Float, t, &T::embedding_lr));
    k.push_back(make_key("unembedding_lr", Kind::Float, t, &T::unembedding_lr));
    k.push_back(make_key("matrix_lr", Kind::Float, t, &T::matrix_lr));
    k.push_back(make_key("mamba_lr", Kind::Float, t, &T::mamba_lr));
    k.push_back(make_key("weight_decay", Kind::Float, t, &T::weight_decay));
    k.push_back(make_key("grad_clip", Kind::Float, t, &T::grad_clip));
    k.push_back(make_key("warmup_ratio", Kind::Float, t, &T::warmup_ratio));
    k.push_back(make_key("warmdown_ratio", Kind::Float, t, &T::warmdown_ratio));
    k.push_back(make_key("final_lr_frac", Kind::Float, t, &T::final_lr_frac));
    k.push_back(make_key("newton_schulz_dtype", Kind::String, t, &T::newton_schulz_dtype));
    // evaluation, logging, checkpoints
    k.push_back(make_key("eval_every", Kind::Int, t, &T::eval_every));
    k.push_back(make_key("eval_tokens", Kind::Int, t, &T::eval_tokens));
    k.push_back(make_key("sample_every", Kind::Int, t, &T::sample_every));
    k.push_back(make_key("log_every", Kind::Int, t, &T::log_every));
    k.push_back(make_key("save_every", Kind::Int, t, &T::save_every));
    k.push_back(make_key("resume", Kind::Bool, t, &T::resume));
    k.push_back(make_key("overwrite", Kind::Bool, t, &T::overwrite));
    k.push_back(make_key("peak_flops", Kind::Float, t, &T::peak_flops));
    // distributed
    k.push_back(make_key("dist_timeout_s", Kind::Int, t, &T::dist_timeout_s));
    k.push_back(make_key("gloo_interface", Kind::String, t, &T::gloo_interface));
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

std::string lower(std::string s) {
  for (auto& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

std::string resolve_pattern(const json& v) {
  if (v.is_null()) return "";
  std::string out;
  auto entry = [&](const std::string& raw) {
    const std::string s = lower(raw);
    if (s == "t" || s == "transformer") return 'T';
    if (s == "m" || s == "mamba") return 'M';
    throw UserError("block_pattern: unknown entry '" + raw +
                    "'; allowed: \"T\"/\"transformer\" or \"M\"/\"mamba\" (case-insensitive)");
  };
  if (v.is_string()) {
    for (char ch : v.get<std::string>()) out += entry(std::string(1, ch));
  } else {
    for (const auto& e : v) {
      if (!e.is_string())
        throw UserError("block_pattern: entry " + e.dump() + " is not a string; allowed: \"T\" or \"M\"");
      out += entry(e.get<std::string>());
    }
  }
  // Only null means "all T": an empty string or list is more likely a mistake than a request.
  if (out.empty())
    throw UserError("block_pattern: empty; give one \"T\" or \"M\" per layer (e.g. \"TMTM\"), or null for all T");
  return out;
}

bool type_ok(Kind kind, const json& v) {
  switch (kind) {
    // An unsigned JSON number above INT64_MAX would wrap around in get<int64_t>().
    case Kind::Int: return v.is_number_integer() && !(v.is_number_unsigned() && v.get<uint64_t>() > INT64_MAX);
    case Kind::UInt: return v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0);
    case Kind::Float: return v.is_number();
    case Kind::Bool: return v.is_boolean();
    case Kind::String: return v.is_string();
    case Kind::Pattern: return v.is_null() || v.is_string() || v.is_array();
  }
  return false;
}

void apply_key(Config& config, const std::string& key, const json& value, const std::string& where) {
  const KeySpec& spec = find_key(key, where);
  if (!type_ok(spec.kind, value)) {
    throw UserError(where + "key '" + key + "' must be " + kind_name(spec.kind) + ", got " +
                    value.dump());
  }
  spec.set(config, value);
}

// Byte offset → "line L, column C" for parse errors.
std::string line_column(const std::string& text, size_t byte) {
  size_t line = 1, col = 1;
  for (size_t i = 0; i < std::min(byte, text.size()); ++i) {
    if (text[i] == '\n') ++line, col = 1;
    else ++col;
  }
  return "line " + std::to_string(line) + ", column " + std::to_string(col > 1 ? col - 1 : col);
}

void require(bool ok, const std::string& key, const std::string& problem) {
  if (!ok) throw UserError("config key '" + key + "': " + problem);
}

// ---------------------------------------------------------------------------------------------
// Upper bounds. Far above any model this trainer is meant for, and low enough that every size and
// estimate derived from the config (parameters, bytes, FLOPs, tokens per micro-step) is exact in
// int64: the largest, the logits' activation bytes, stays below 2^61.

constexpr int64_t kMaxDepth = 1024;
constexpr int64_t kMaxModelDim = 65536;             // depth × aspect_ratio, and head_dim
constexpr int64_t kMaxSeqLen = int64_t{1} << 20;    // 1,048,576
constexpr int64_t kMaxMicroTokens = int64_t{1} << 24;  // device_batch_size × max_seq_len
constexpr int64_t kMaxMambaExpand = 16;
constexpr int64_t kMaxTimeoutSeconds = 1000000;     // ~11.6 days; milliseconds stay far from overflow
constexpr double kMaxFloat = 1e30;                  // fp32 optimizer math overflows near 3.4e38

void at_most(int64_t v, int64_t limit, const char* key, const std::string& what = "") {
  require(v <= limit, key, "must be at most " + std::to_string(limit) + what + ", got " + std::to_string(v));
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
  at_most(t.device_batch_size * m.sequence_len, kMaxMicroTokens, "device_batch_size",
          " tokens per micro-step (device_batch_size × max_seq_len)");
  at_most(t.num_iterations, kMaxIterations, "num_iterations");
  at_most(t.dist_timeout_s, kMaxTimeoutSeconds, "dist_timeout_s");
  for (auto [v, key] : {std::pair{t.embedding_lr, "embedding_lr"}, {t.unembedding_lr, "unembedding_lr"},
                        {t.matrix_lr, "matrix_lr"}, {t.mamba_lr, "mamba_lr"}, {t.weight_decay, "weight_decay"},
                        {t.grad_clip, "grad_clip"}, {t.target_flops, "target_flops"},
                        {t.target_param_data_ratio, "target_param_data_ratio"}, {t.peak_flops, "peak_flops"}}) {
    require(std::fabs(v) <= kMaxFloat, key, "must be a number of magnitude at most 1e30 (fp32 overflows), got " +
                                                json(v).dump());
  }
}

}  // namespace

std::vector<std::string> config_keys() {
  std::vector<std::string> keys;
  for (const auto& spec : key_table()) keys.push_back(spec.name);
  return keys;
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
  const int64_t per_step = c.train.device_batch_size * c.model.sequence_len * world_size;
  require(c.train.total_batch_size > 0 && c.train.total_batch_size % per_step == 0, "total_batch_size",
          std::to_string(c.train.total_batch_size) + " must be a positive multiple of device_batch_size × max_seq_len × world_size = " +
              std::to_string(c.train.device_batch_size) + " × " + std::to_string(c.model.sequence_len) +
              " × " + std::to_string(world_size) + " = " + std::to_string(per_step));
  return c.train.total_batch_size / per_step;
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

  require(static_cast<int64_t>(m.block_pattern.size()) == m.depth, "block_pattern",
          "has " + std::to_string(m.block_pattern.size()) + " entries but depth is " +
              std::to_string(m.depth) + "; give one \"T\" or \"M\" per layer (or null for all T)");
  const int64_t dim = m.model_dim(), heads = m.n_head();
  require(dim % heads == 0, "head_dim",
          "model_dim " + std::to_string(dim) + " (depth × aspect_ratio) is not divisible by n_head " +
              std::to_string(heads) + " = ceil(model_dim / head_dim); choose depth, aspect_ratio or head_dim so it divides");
  require(m.attn_head_dim() % 2 == 0, "head_dim",
          "the attention head size " + std::to_string(m.attn_head_dim()) + " must be even (rotary embeddings)");
  if (m.n_kv_head != -1) {
    require(m.n_kv_head > 0 && heads % m.n_kv_head == 0, "n_kv_head",
            "must be -1 (same as n_head) or a positive divisor of n_head = " + std::to_string(heads) +
                ", got " + std::to_string(m.n_kv_head));
  }
  require(m.mamba_d_state >= 1 && m.mamba_d_state <= 64, "mamba_d_state",
          "must be in 1..64 (the scan kernels hold the state in registers), got " + std::to_string(m.mamba_d_state));
  require(m.mamba_d_conv >= 2 && m.mamba_d_conv <= 4, "mamba_d_conv",
          "must be in 2..4 (Mamba's causal depthwise convolution), got " + std::to_string(m.mamba_d_conv));
  const auto& ac = m.activation_checkpointing;
  require(ac == "none" || ac == "mamba" || ac == "transformer" || ac == "all", "activation_checkpointing",
          "must be \"none\", \"mamba\", \"transformer\" or \"all\", got \"" + ac + "\"");

  const auto& ns = t.newton_schulz_dtype;
  require(ns == "auto" || ns == "bf16" || ns == "fp32", "newton_schulz_dtype",
          "must be \"auto\", \"bf16\" or \"fp32\", got \"" + ns + "\"");
  require(t.device == "auto" || t.device == "cpu" || t.device == "cuda", "device",
          "must be \"auto\", \"cpu\" or \"cuda\", got \"" + t.device + "\"");
  require(!t.data.empty(), "data", "must be \"synthetic\" or a directory of token shards");
  require(!t.out_dir.empty(), "out_dir", "must not be empty");
  require(t.model_tag.find('/') == std::string::npos && t.model_tag != "." && t.model_tag != "..", "model_tag",
          "must not contain '/' or be \".\" or \"..\" (it names a folder inside out_dir), got \"" + t.model_tag + "\"");
  for (auto [v, key] : {std::pair{t.embedding_lr, "embedding_lr"}, {t.unembedding_lr, "unembedding_lr"},
                        {t.matrix_lr, "matrix_lr"}, {t.mamba_lr, "mamba_lr"}, {t.weight_decay, "weight_decay"}}) {
    require(v >= 0, key, "must be >= 0, got " + std::to_string(v));
  }
  for (auto [v, key] : {std::pair{t.warmup_ratio, "warmup_ratio"}, {t.warmdown_ratio, "warmdown_ratio"},
                        {t.final_lr_frac, "final_lr_frac"}}) {
    require(v >= 0 && v <= 1, key, "must be in [0, 1], got " + std::to_string(v));
  }
  require(t.warmup_ratio + t.warmdown_ratio <= 1, "warmdown_ratio",
          "warmup_ratio + warmdown_ratio must be <= 1");
  require(t.num_iterations == -1 || t.num_iterations > 0, "num_iterations",
          "must be -1 (derive from target_flops or target_param_data_ratio) or positive");
  require(t.num_iterations > 0 || t.target_flops > 0 || t.target_param_data_ratio > 0,
          "target_param_data_ratio", "one of num_iterations, target_flops, target_param_data_ratio must be positive");
  grad_accum_steps(c, world_size);
}

Config config_from_json(const json& object, const std::vector<std::string>& overrides, int world_size) {
  if (!object.is_object()) throw UserError("config: the top level must be a JSON object of key: value");
  Config config;
  for (const auto& [key, value] : object.items()) apply_key(config, key, value, "config: ");
  for (const auto& item : overrides) {
    const auto eq = item.find('=');
    std::string key = item.substr(0, eq);
    const std::string where = "override --" + item + ": ";
    json value;
    if (eq == std::string::npos) {
      // A bare --flag means true for boolean keys.
      if (find_key(key, where).kind != Kind::Bool)
        throw UserError(where + "expected --" + key + "=VALUE");
      value = true;
    } else {
      const std::string text = item.substr(eq + 1);
      value = json::parse(text, nullptr, /*allow_exceptions=*/false);
      if (value.is_discarded()) value = text;  // not JSON: a plain string such as a path or "TTMM"
      // Command-line bytes need not be UTF-8, but JSON strings (and so to_json(), meta files) must.
      try {
        (void)value.dump();
      } catch (const json::type_error&) {
        throw UserError("override --" + key + ": the value is not valid UTF-8");
      }
    }
    apply_key(config, key, value, where);
  }
  // null block_pattern: all T (validate() reports a depth out of range before the pattern).
  const int64_t depth = config.model.depth;
  if (config.model.block_pattern.empty() && depth > 0 && depth <= kMaxDepth)
    config.model.block_pattern.assign(depth, 'T');
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
    throw UserError("config: '" + path + "' is not valid JSON at " + line_column(text, e.byte) + ": " +
                    e.what());
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
