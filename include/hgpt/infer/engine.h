// engine.h — incremental inference for any block pattern: a prefill over the prompt that keeps
// each layer's state (each block kind's own: keys/values for T layers, conv and SSM state for M
// layers), then one token at a time from that state. The same parameters and the same code as
// training (the blocks' forward with a state), no autograd.
#pragma once

#include "hgpt/model/gpt.h"

#include <cstdint>
#include <memory>
#include <vector>

namespace hgpt::infer {

// Every layer's state for a batch of sequences that all stand at the same position.
struct InferenceState {
  std::vector<std::unique_ptr<model::LayerState>> layers;  // per layer, from its block's new_state
  model::Rotary rotary;                                    // tables for positions 0 .. capacity−1
  int64_t capacity = 0;                                    // most positions the state can hold
  int64_t length = 0;                                      // positions consumed so far

  // Bytes of the layers' states (not the rotary tables): for T layers the whole preallocated
  // capacity, for M layers the conv and SSM states.
  int64_t bytes() const;
};

// Runs a HybridGPT incrementally. Runs in whatever autocast the caller set (bf16 on CUDA, as in
// training); gradients are off inside.
class Engine {
 public:
  explicit Engine(model::HybridGPT model);

  // A fresh state for up to `capacity` positions (1 .. max_seq_len).
  InferenceState new_state(int64_t capacity) const;

  // Feeds tokens (B, T) at the state's position and advances it by T; returns fp32 logits
  // (B, T, vocab). A fresh state runs the whole prompt in one pass (prefill); afterwards each
  // token is one step (decode; T > 1 runs T steps).
  at::Tensor forward(const at::Tensor& tokens, InferenceState& state);

  model::HybridGPT& model() { return model_; }

 private:
  at::Tensor run_layers(const at::Tensor& tokens, InferenceState& state);

  model::HybridGPT model_;
};

}  // namespace hgpt::infer
