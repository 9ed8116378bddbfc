// config.h — the run's configuration: model shape (ModelConfig) and training knobs (TrainConfig).
//
// One flat JSON object with nanochat's key names, plus block_pattern and mamba_*; `--key=value`
// overrides apply after the file with the same validation. Every key, its default and its allowed
// values live in one table in config.cpp; README.md lists them. Invalid input throws
// hgpt::UserError with one line naming the key, what was wrong and what is allowed.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace hgpt {

struct ModelConfig {
  int64_t depth = 20;          // number of blocks
  int64_t aspect_ratio = 64;   // model_dim = depth * aspect_ratio
  int64_t head_dim = 128;      // n_head = ceil(model_dim / head_dim), then model_dim must divide
  int64_t n_kv_head = -1;      // -1: same as n_head (no GQA)
  int64_t vocab_size = 65536;
  int64_t sequence_len = 2048; // max_seq_len
  std::string block_pattern;   // resolved, one 'T' or 'M' per layer
  int64_t mamba_d_state = 16;
  int64_t mamba_d_conv = 4;
  int64_t mamba_expand = 2;
  bool mamba_use_mlp = false;
  // Which blocks recompute their activations in backward instead of keeping them:
  // "none" | "mamba" | "transformer" | "all". Changes memory and time, never the numbers.
  std::string activation_checkpointing = "none";

  // Derived shape (valid after validation).
  int64_t model_dim() const { return depth * aspect_ratio; }
  int64_t n_head() const { return (model_dim() + head_dim - 1) / head_dim; }
  int64_t kv_heads() const { return n_kv_head > 0 ? n_kv_head : n_head(); }
  int64_t attn_head_dim() const { return model_dim() / n_head(); }
  int64_t count(char kind) const;  // layers of kind 'T' or 'M'
  bool checkpoints(char kind) const;  // whether blocks of kind 'T' or 'M' recompute in backward
};

struct TrainConfig {
  // runtime
  std::string device = "auto";       // auto | cpu | cuda
  std::string data = "synthetic";    // "synthetic" or a directory of llm.c token shards
  std::string tokenizer;             // directory with tokenizer.tiktoken + tokenizer.json (optional)
  std::string out_dir = "out";
  std::string model_tag;             // default d<depth>
  uint64_t seed = 42;
  // batch and horizon
  int64_t device_batch_size = 32;
  int64_t total_batch_size = 524288; // tokens per optimizer step, all ranks
  int64_t num_iterations = -1;       // explicit number of steps, else from target_flops, else ratio
  double target_flops = -1.0;
  double target_param_data_ratio = 20.0;
  // optimisation
  double embedding_lr = 0.2;
  double unembedding_lr = 0.004;
  double matrix_lr = 0.02;
  double mamba_lr = 0.004;           // AdamW lr of Mamba's A_log, D, conv1d and dt_proj.bias
  double weight_decay = 0.0;
  double grad_clip = 1.0;            // <= 0 disables
  double warmup_ratio = 0.0;
  double warmdown_ratio = 0.2;
  double final_lr_frac = 0.0;
  std::string newton_schulz_dtype = "auto";  // auto (bf16 where the hardware has it) | bf16 | fp32
  // evaluation, logging, checkpoints
  int64_t eval_every = 250;          // <= 0: only at the end
  int64_t eval_tokens = 20 * 524288;
  int64_t sample_every = 2000;       // <= 0: never
  int64_t log_every = 1;
  int64_t save_every = -1;           // <= 0: only at the end
  bool resume = false;
  bool overwrite = false;            // a fresh run may delete the checkpoints of another run in its folder
  double peak_flops = -1.0;          // FLOP/s for MFU; <= 0: from the known-GPU table
  // distributed
  int64_t dist_timeout_s = 60;
  std::string gloo_interface;        // network interface for multi-host CPU runs
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

// Parse a config file, then `key=value` overrides (the leading "--" already stripped), validate.
// Throws hgpt::UserError. `world_size` is used for the grad-accumulation divisibility check.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {},
                   int world_size = 1);
// Same, from an already parsed JSON object (tests, resume).
Config config_from_json(const nlohmann::json& object, const std::vector<std::string>& overrides = {},
                        int world_size = 1);
// Checks that hold at any world size plus grad-accumulation divisibility at this one.
void validate(const Config& config, int world_size = 1);

// Tokens per micro-step per rank and the resulting grad-accumulation steps (throws UserError if
// total_batch_size does not divide).
int64_t grad_accum_steps(const Config& config, int world_size);

// All valid keys (for help text and "did you mean").
std::vector<std::string> config_keys();
// The model keys the weights' shapes depend on, in table order: a checkpoint resumes only with
// the same values (max_seq_len is not one of them; training keys may change on resume).
std::vector<std::string> architecture_keys();

}  // namespace hgpt
