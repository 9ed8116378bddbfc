// engine.cpp — prefill and decode over the blocks' cached/stateful forward.
#include "hgpt/infer/engine.h"

#include "hgpt/errors.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <string>

namespace hgpt::infer {

int64_t InferenceState::bytes() const {
  int64_t total = 0;
  for (const auto& layer : layers) total += layer->bytes();
  return total;
}

Engine::Engine(model::HybridGPT model) : model_(std::move(model)) {}

InferenceState Engine::new_state(int64_t capacity) const {
  const auto& config = model_->config();
  if (capacity < 1 || capacity > config.sequence_len) {
    throw UserError("cannot generate " + std::to_string(capacity) +
                    " positions: the model was trained with max_seq_len " + std::to_string(config.sequence_len) +
                    "; use a shorter prompt or fewer tokens");
  }
  InferenceState state;
  state.capacity = capacity;
  for (const auto& block : model_->blocks()) state.layers.push_back(block->new_state(capacity));
  const auto device = model_->parameters().front().device();
  state.rotary = model::rotary_tables(capacity, config.attn_head_dim(), device);
  return state;
}

at::Tensor Engine::forward(const at::Tensor& tokens, InferenceState& state) {
  at::NoGradGuard no_grad;
  const int64_t T = tokens.size(1);
  TORCH_CHECK(state.length + T <= state.capacity, "Engine: ", state.length + T,
              " positions exceed the state's capacity ", state.capacity);
  if (state.length == 0 || T == 1) return run_layers(tokens, state);
  // Mamba layers advance one token per step: feed the tokens one by one.
  std::vector<at::Tensor> logits;
  for (int64_t t = 0; t < T; ++t) logits.push_back(run_layers(tokens.narrow(1, t, 1), state));
  return at::cat(logits, 1);
}

at::Tensor Engine::run_layers(const at::Tensor& tokens, InferenceState& state) {
  const auto& blocks = model_->blocks();
  auto x = model_->embed(tokens);
  const auto doc_starts = model_->document_starts(tokens);
  for (size_t i = 0; i < blocks.size(); ++i)
    x = blocks[i]->forward(x, {state.rotary, state.layers[i].get(), doc_starts});
  state.length += tokens.size(1);
  return model_->head(x);
}

}  // namespace hgpt::infer
