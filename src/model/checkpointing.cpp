// checkpointing.cpp — activation checkpointing as a custom autograd node (the reentrant scheme of
// torch.utils.checkpoint): forward under no_grad, backward = recompute + a nested backward.
#include "hgpt/model/checkpointing.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/functions/utils.h>

#include <string>

namespace hgpt::model {
namespace {

// The CUDA autocast state of the forward (the only autocast the trainer uses), re-entered for the
// recomputation: the backward runs outside the forward's autocast scope.
struct AutocastState {
  bool enabled = false;
  at::ScalarType dtype = at::kBFloat16;

  static AutocastState current() {
    return {at::autocast::is_autocast_enabled(at::kCUDA), at::autocast::get_autocast_dtype(at::kCUDA)};
  }
};

class AutocastScope {
 public:
  explicit AutocastScope(const AutocastState& want) : saved_(AutocastState::current()) {
    at::autocast::set_autocast_dtype(at::kCUDA, want.dtype);
    at::autocast::set_autocast_enabled(at::kCUDA, want.enabled);
  }
  ~AutocastScope() {
    at::autocast::set_autocast_enabled(at::kCUDA, saved_.enabled);
    at::autocast::set_autocast_dtype(at::kCUDA, saved_.dtype);
    if (!saved_.enabled) at::autocast::clear_cache();  // drop the recomputation's cast weights
  }

 private:
  AutocastState saved_;
};

class CheckpointBackward : public torch::autograd::Node {
 public:
  CheckpointBackward(BlockFn fn, at::Tensor input, AutocastState autocast)
      : fn_(std::move(fn)), input_(std::move(input)), autocast_(autocast) {}

  std::string name() const override { return "CheckpointBackward"; }

  torch::autograd::variable_list apply(torch::autograd::variable_list&& grads) override {
    TORCH_CHECK(input_.defined(),
                "activation checkpointing: this block's graph was already released "
                "(a second backward through it needs the plain, non-checkpointed run)");
    if (!grads[0].defined()) return {at::Tensor()};
    const auto x = input_.detach().requires_grad_(true);
    at::Tensor y;
    {
      at::AutoGradMode grad_on(true);
      AutocastScope autocast(autocast_);
      y = fn_(x);
    }
    torch::autograd::backward({y}, {grads[0]});  // accumulates the block's parameter gradients
    return {x.grad()};
  }

  void release_variables() override { input_.reset(); }

 private:
  BlockFn fn_;
  at::Tensor input_;  // detached: no reference back into the graph
  AutocastState autocast_;
};

}  // namespace

at::Tensor checkpointed(const BlockFn& fn, const at::Tensor& x) {
  if (!at::GradMode::is_enabled()) return fn(x);
  at::Tensor y;
  {
    at::NoGradGuard no_grad;
    y = fn(x);
  }
  auto node = std::shared_ptr<CheckpointBackward>(new CheckpointBackward(fn, x.detach(), AutocastState::current()),
                                                  torch::autograd::deleteNode);
  node->set_next_edges(torch::autograd::collect_next_edges(x));
  torch::autograd::set_history(y, node);
  return y;
}

}  // namespace hgpt::model
