// generate.h — sampling the next token (temperature, top-k, top-p, seeded) and the generation
// loop over the Engine: one prompt, several samples of it as one batch, a stop token, streaming.
#pragma once

#include "hgpt/infer/engine.h"

#include <ATen/core/Generator.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

namespace hgpt::infer {

struct SamplingParams {
  double temperature = 0.8;  // 0: greedy (argmax)
  int64_t top_k = 50;        // keep the k most likely tokens; <= 0: all
  double top_p = 1.0;        // then the smallest set whose probability reaches top_p; 1: all
  uint64_t seed = 0;
};

// One token per row of logits (B, V), on the CPU (the same draws on any device): argmax when
// temperature is 0, else a draw from softmax(logits / temperature) cut to top_k, then to top_p.
// Returns (B) int64. Throws UserError on out-of-range parameters.
at::Tensor sample_next(const at::Tensor& logits, const SamplingParams& params, at::Generator& generator);

constexpr int64_t kMaxSamples = 65536;  // num_samples' bound: one batch, and its states, in memory

struct GenerateOptions {
  int64_t max_tokens = 256;            // any count: generation also stops at max_seq_len
  int64_t num_samples = 1;             // the prompt repeated: a batch of this many sequences
  std::optional<uint32_t> stop_token;  // a sequence ends when it samples this (not returned)
  SamplingParams sampling;
};

struct Generation {
  std::vector<std::vector<uint32_t>> tokens;  // per sample, the new tokens (stop token excluded)
  int64_t prefill_tokens = 0;
  double prefill_seconds = 0.0, decode_seconds = 0.0;
  int64_t decoded_tokens = 0;     // tokens fed back through decode steps, all samples together
  bool hit_length_limit = false;  // a sample was still going when max_seq_len ended generation
};

// Called after every sampled position with the new token of each sample (B) and which samples
// were still running when it was drawn.
using TokenCallback = std::function<void(const std::vector<uint32_t>& tokens, const std::vector<bool>& running)>;

// Prefill on the prompt, then sample until every sample stopped, max_tokens are drawn or the
// sequence reaches max_seq_len (generation stops there: hit_length_limit). A prompt longer than
// max_seq_len, or empty, is a UserError. Runs under the caller's autocast.
Generation generate(Engine& engine, const std::vector<uint32_t>& prompt, const GenerateOptions& options,
                    const TokenCallback& on_token = nullptr);

}  // namespace hgpt::infer
