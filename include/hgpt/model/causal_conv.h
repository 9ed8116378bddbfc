// causal_conv.h — the causal depthwise convolution over time that both Mamba mixers run before
// their scan (mamba's conv1d with padding d_conv − 1, first L outputs kept), for training and for
// decoding one token at a time. The weights stay those of a torch Conv1d module (mamba's names and
// shapes: weight (channels, 1, d_conv), bias (channels)).
#pragma once

#include <torch/nn/modules/conv.h>

namespace hgpt::model {

// y_t = bias + Σ_k w_k · x_{t−(K−1)+k} on x (B, L, channels), zeros before the start. Written as K
// shifted multiply-adds rather than at::conv1d, whose grouped (depthwise) path is slow on CPUs.
// With doc_starts (B, L) (model/documents.h) the inputs from an earlier document count as zeros.
at::Tensor causal_depthwise_conv(const at::Tensor& x, const torch::nn::Conv1d& conv,
                                 const at::Tensor& doc_starts = at::Tensor());

// The decoding state after x (B, L, channels): its last K − 1 positions as (B, channels, K − 1),
// zeros in front when L < K − 1, and (with doc_starts) zeros for positions before the last
// document's start.
at::Tensor conv_state_after(const at::Tensor& x, int64_t K, const at::Tensor& doc_starts = at::Tensor());

// One position x (B, channels) with `state` from conv_state_after: the conv's output at x, and
// `state` moved on by one position (in the state's dtype).
at::Tensor causal_conv_step(const at::Tensor& x, at::Tensor& state, const torch::nn::Conv1d& conv);

}  // namespace hgpt::model
