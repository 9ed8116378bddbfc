// checkpointing.h — activation checkpointing of one block: run it without keeping its
// activations, keep only its input, and recompute it during backward.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>

namespace hgpt::model {

using BlockFn = std::function<at::Tensor(const at::Tensor&)>;

// y = fn(x), with the graph inside fn dropped: backward re-runs fn on the saved x (under the
// autocast state of the forward) and back-propagates through the recomputed graph, which
// accumulates the gradients of fn's parameters and returns x's. fn must be deterministic and
// must not capture references that die before backward (capture by value). Without grad mode
// this is just fn(x).
at::Tensor checkpointed(const BlockFn& fn, const at::Tensor& x);

}  // namespace hgpt::model
