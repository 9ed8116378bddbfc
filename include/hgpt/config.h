// config.h — the run's configuration: model shape (ModelConfig) and training knobs (TrainConfig).
//
// One flat JSON object with nanochat's key names, plus block_pattern and mamba_*; `--key=value`
// overrides apply after the file with the same validation. Each key's default is its field's
// initialiser below; its type, allowed values and one-line doc live in one table in config.cpp
// (config_key_docs), which README.md's key tables match (a test compares them). String keys with
// a fixed set of values are parsed once into the enums below. Invalid input throws
// hgpt::UserError with one line naming the key, what was wrong and what is allowed.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace hgpt {

// activation_checkpointing: which blocks recompute their activations in backward instead of
// keeping them. Changes memory and time, never the numbers. Each block kind belongs to the group
// "mamba" or "transformer" (model/block_kinds.def).
enum class ActivationCheckpointing { None, Mamba, Transformer, All };
// newton_schulz_dtype: Muon's Newton–Schulz dtype; Auto = bf16 where the hardware has it.
enum class NewtonSchulzDtype { Auto, BF16, FP32 };
// device: Auto = CUDA when present.
enum class DeviceChoice { Auto, CPU, CUDA };
// `resume`: false, true, or "auto" (resume when the run folder holds a complete checkpoint).
enum class ResumeMode { Off, On, Auto };
// document_boundaries: whether attention and the Mamba state flow from one packed document into
// the next (Cross, nanochat's behaviour) or every block restarts at each document's BOS (Reset).
enum class DocumentBoundaries { Cross, Reset };

struct ModelConfig {
  int64_t depth = 20;         // number of blocks
  int64_t aspect_ratio = 64;  // model_dim = depth * aspect_ratio
  int64_t head_dim = 128;     // n_head = ceil(model_dim / head_dim), then model_dim must divide
  int64_t n_kv_head = -1;     // -1: same as n_head (no GQA)
  int64_t vocab_size = 65536;
  int64_t sequence_len = 2048;  // max_seq_len
  std::string block_pattern;    // resolved, one block kind's symbol per layer (model/block_kinds.def)
  int64_t mamba_d_state = 16;
  int64_t mamba_d_conv = 4;
  int64_t mamba_expand = 2;
  bool mamba_use_mlp = false;
  // Mamba-2 (pattern symbol '2'); d_conv, expand and use_mlp are mamba_*'s.
  int64_t mamba2_d_state = 128;
  int64_t mamba2_headdim = 64;      // nheads = mamba_expand × model_dim / headdim
  int64_t mamba2_ngroups = 1;       // B and C shared by nheads / ngroups heads
  int64_t mamba2_chunk_size = 256;  // the chunked scan's Q
  // Sliding-window attention (pattern symbol 'S'): each query sees the last attn_window positions.
  int64_t attn_window = -1;    // -1: nanochat's short window, max_seq_len/4 rounded up to 128 (resolved on load)
  std::string window_pattern;  // "SSSL": S/L tiled over the T and S layers, the last one always L; "": none
  // Megatron-LM's notation (model/hybrid_layer_pattern.h), resolved into block_pattern on load.
  std::string hybrid_layer_pattern;    // "M-M*-": M Mamba-2, * attention, - MLP; depth = its length
  double hybrid_attention_ratio = -1;  // -1: unused; else allocate depth layers as Megatron-LM does
  double hybrid_mlp_ratio = -1;
  ActivationCheckpointing activation_checkpointing = ActivationCheckpointing::None;
  DocumentBoundaries document_boundaries = DocumentBoundaries::Cross;
  // The token that starts a document: -1 = resolved when training starts (256 for the built-in
  // corpus, the tokenizer's <|bos|> for token shards); only "reset" reads it.
  int64_t bos_token_id = -1;

  // Derived shape (valid after validation).
  int64_t model_dim() const { return depth * aspect_ratio; }
  int64_t n_head() const { return (model_dim() + head_dim - 1) / head_dim; }
  int64_t kv_heads() const { return n_kv_head > 0 ? n_kv_head : n_head(); }
  int64_t attn_head_dim() const { return model_dim() / n_head(); }
  int64_t count(char kind) const;     // layers whose pattern symbol is `kind`
  bool checkpoints(char kind) const;  // whether blocks of that kind recompute in backward
};

struct TrainConfig {
  // runtime
  DeviceChoice device = DeviceChoice::Auto;
  std::string data = "synthetic";  // "synthetic" or a directory of llm.c token shards
  std::string tokenizer;           // directory with tokenizer.tiktoken + tokenizer.json (optional)
  std::string out_dir = "out";
  std::string model_tag;   // default d<depth>
  uint64_t seed = 42;      // initialisation and training-data order
  uint64_t val_seed = 42;  // draws the built-in corpus's validation rows, whatever `seed` is
  // batch and horizon
  int64_t device_batch_size = 32;
  int64_t total_batch_size = 524288;  // tokens per optimizer step, all ranks
  int64_t num_iterations = -1;        // explicit number of steps, else from target_flops, else ratio
  double target_flops = -1.0;
  double target_param_data_ratio = 20.0;
  // optimisation
  double embedding_lr = 0.2;
  double unembedding_lr = 0.004;
  double matrix_lr = 0.02;
  double mamba_lr = 0.004;  // AdamW lr of the Mamba mixers' small tensors (A_log, D, conv1d, dt biases, norm)
  double weight_decay = 0.0;
  double grad_clip = 1.0;  // <= 0 disables
  double warmup_ratio = 0.0;
  double warmdown_ratio = 0.2;
  double final_lr_frac = 0.0;
  NewtonSchulzDtype newton_schulz_dtype = NewtonSchulzDtype::Auto;
  // evaluation, logging, checkpoints
  int64_t eval_every = 250;  // <= 0: only at the end
  int64_t eval_tokens = 20 * 524288;
  int64_t extrapolate_to = 1;   // at the end also evaluate at 2×, 4×, ... up to this × max_seq_len
  int64_t sample_every = 2000;  // <= 0: never
  int64_t log_every = 1;
  int64_t save_every = -1;  // <= 0: only at the end
  ResumeMode resume = ResumeMode::Off;
  bool overwrite = false;    // a fresh run may delete the checkpoints of another run in its folder
  double peak_flops = -1.0;  // FLOP/s for MFU; <= 0: from the known-GPU table
  // distributed
  int64_t dist_timeout_s = 60;
  std::string gloo_interface;  // network interface for multi-host CPU runs
};

struct Config {
  ModelConfig model;
  TrainConfig train;

  std::string resolved_model_tag() const;
  nlohmann::json to_json() const;  // every key, resolved (block_pattern as a list)
};

// The most optimizer steps a run may have, given or derived (config.cpp bounds the other keys).
constexpr int64_t kMaxIterations = 1000000000000;  // 10^12
// The largest vocabulary: vocab_size, and every token id a tokenizer file may give.
constexpr int64_t kMaxVocabSize = int64_t{1} << 24;  // 16,777,216
constexpr int64_t kMaxSeqLen = int64_t{1} << 20;     // 1,048,576 positions: max_seq_len and evaluations
// Validation tokens per evaluation (eval_tokens, evaluate --eval_tokens): a thousand times nanochat's
// 20 × 524,288 (an evaluation of days on one GPU is a typo, not a plan).
constexpr int64_t kMaxEvalTokens = int64_t{1} << 34;

// Parse a config file, then `key=value` overrides (the leading "--" already stripped), validate.
// Throws hgpt::UserError. `world_size` is used for the grad-accumulation divisibility check.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {}, int world_size = 1);
// Same, from an already parsed JSON object (tests, resume).
Config config_from_json(const nlohmann::json& object, const std::vector<std::string>& overrides = {},
                        int world_size = 1);
// Checks that hold at any world size plus grad-accumulation divisibility at this one.
void validate(const Config& config, int world_size = 1);

// Tokens one rank processes in one micro-step: device_batch_size × max_seq_len.
int64_t tokens_per_micro_step(const Config& config);
// The grad-accumulation steps that make total_batch_size at this world size (throws UserError if
// total_batch_size does not divide).
int64_t grad_accum_steps(const Config& config, int world_size);

// The spelling of an enum value in the config ("none", "bf16", "cuda", ...).
const char* to_string(ActivationCheckpointing value);
const char* to_string(NewtonSchulzDtype value);
const char* to_string(DeviceChoice value);
const char* to_string(DocumentBoundaries value);
// A device name as the tools' --device takes it ("auto", "cpu", "cuda"); anything else is a UserError.
DeviceChoice parse_device_choice(const std::string& text);

// All valid keys (for help text and "did you mean").
std::vector<std::string> config_keys();
// Each key as README.md documents it: the default (JSON, or a description such as "d<depth>"),
// the allowed values of a string key with a fixed set, and a one-line doc.
struct ConfigKeyDoc {
  std::string name;
  std::string default_value;
  std::vector<std::string> allowed;
  std::string doc;
};
std::vector<ConfigKeyDoc> config_key_docs();
// The model keys the weights' shapes depend on, in table order: a checkpoint resumes only with
// the same values (max_seq_len is not one of them; training keys may change on resume).
std::vector<std::string> architecture_keys();

}  // namespace hgpt
