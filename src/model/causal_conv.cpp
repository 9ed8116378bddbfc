// causal_conv.cpp — the Mamba mixers' causal depthwise convolution (causal_conv.h).
#include "hgpt/model/causal_conv.h"

#include "hgpt/model/documents.h"

#include <ATen/ATen.h>

#include <algorithm>

namespace hgpt::model {

namespace {
// Document ids (B, L) padded in front with K − 1 ids of no document (-1), like the conv's input.
at::Tensor padded_document_ids(const at::Tensor& doc_starts, int64_t K) {
  return at::constant_pad_nd(document_ids(doc_starts), {K - 1, 0}, -1);
}
}  // namespace

at::Tensor causal_depthwise_conv(const at::Tensor& x, const torch::nn::Conv1d& conv, const at::Tensor& doc_starts) {
  const int64_t L = x.size(1), K = conv->weight.size(2);
  const auto padded = at::constant_pad_nd(x, {0, 0, K - 1, 0});
  const auto weight = conv->weight.squeeze(1).t().to(x.scalar_type());  // (K, channels)
  at::Tensor ids;
  if (doc_starts.defined()) ids = padded_document_ids(doc_starts, K);
  // Tap k reads position t − (K−1) + k; with documents, only where that position is in t's.
  auto tap = [&](int64_t k) {
    const auto in = padded.narrow(1, k, L);
    if (!ids.defined() || k == K - 1) return in;
    return in * ids.narrow(1, k, L).eq(ids.narrow(1, K - 1, L)).unsqueeze(-1).to(x.scalar_type());
  };
  auto y = at::addcmul(conv->bias.to(x.scalar_type()), tap(0), weight.select(0, 0));
  for (int64_t k = 1; k < K; ++k) y = at::addcmul(y, tap(k), weight.select(0, k));
  return y;
}

at::Tensor conv_state_after(const at::Tensor& x, int64_t K, const at::Tensor& doc_starts) {
  const int64_t L = x.size(1);
  auto state = at::constant_pad_nd(x.transpose(1, 2), {std::max<int64_t>(0, K - 1 - L), 0}).narrow(2, -(K - 1), K - 1);
  if (doc_starts.defined()) {
    // Kept where the position is in the row's last document (the one decoding continues).
    const auto ids = padded_document_ids(doc_starts, K);
    const auto tail = ids.narrow(1, -(K - 1), K - 1);
    state = state * tail.eq(ids.narrow(1, -1, 1)).unsqueeze(1).to(state.scalar_type());
  }
  return state.contiguous();
}

at::Tensor causal_conv_step(const at::Tensor& x, at::Tensor& state, const torch::nn::Conv1d& conv) {
  const int64_t K = conv->weight.size(2);
  const auto window = at::cat({state, x.unsqueeze(2).to(state.scalar_type())}, 2);  // (B, channels, K)
  state = window.narrow(2, 1, K - 1);
  const auto weight = conv->weight.squeeze(1).to(window.scalar_type());  // (channels, K)
  return (window * weight).sum(2) + conv->bias.to(window.scalar_type());
}

}  // namespace hgpt::model
