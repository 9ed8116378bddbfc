// model_test_util.h — shared helpers of the model tests: tiny validated configs and a way to
// make the zero-initialised output projections non-zero (so every block really contributes).
#pragma once

#include "hgpt/config.h"
#include "hgpt/model/gpt.h"
#include "hgpt/strings.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <nlohmann/json.hpp>

#include <string>

namespace hgpt::model::test {

// A validated tiny ModelConfig: `patch` (config keys) merged over depth 2, aspect_ratio 32,
// head_dim 16, vocab 97, max_seq_len 32.
inline ModelConfig tiny_config(const nlohmann::json& patch) {
  nlohmann::json j = {{"depth", 2},        {"aspect_ratio", 32},     {"head_dim", 16},        {"vocab_size", 97},
                      {"max_seq_len", 32}, {"device_batch_size", 2}, {"total_batch_size", 64}};
  j.merge_patch(patch);
  return config_from_json(j).model;
}

// The weights the init zeroes: every block's output projection and lm_head.
inline bool is_zero_init(const std::string& name) {
  return ends_with(name, "c_proj.weight") || ends_with(name, "out_proj.weight") || name == "lm_head.weight";
}

// Fill the zero-initialised weights with N(0, std) so the blocks and the head are no longer inert.
inline void perturb_zero_init(HybridGPT& model, double std = 0.1) {
  at::NoGradGuard no_grad;
  for (auto& item : model->named_parameters()) {
    if (is_zero_init(item.key())) item.value().normal_(0.0, std);
  }
}

// A built and initialised model (seeded, so every test sees the same weights).
inline HybridGPT make_model(const ModelConfig& config, uint64_t seed = 1234) {
  at::manual_seed(seed);
  HybridGPT model(config);
  model->init_weights();
  return model;
}

}  // namespace hgpt::model::test
