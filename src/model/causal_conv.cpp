// causal_conv.cpp — the Mamba mixers' causal depthwise convolution (causal_conv.h).
#include "hgpt/model/causal_conv.h"

#include <ATen/ATen.h>

#include <algorithm>

namespace hgpt::model {

at::Tensor causal_depthwise_conv(const at::Tensor& x, const torch::nn::Conv1d& conv) {
  const int64_t L = x.size(1), K = conv->weight.size(2);
  const auto padded = at::constant_pad_nd(x, {0, 0, K - 1, 0});
  const auto weight = conv->weight.squeeze(1).t().to(x.scalar_type());  // (K, channels)
  auto y = at::addcmul(conv->bias.to(x.scalar_type()), padded.narrow(1, 0, L), weight.select(0, 0));
  for (int64_t k = 1; k < K; ++k) y = at::addcmul(y, padded.narrow(1, k, L), weight.select(0, k));
  return y;
}

at::Tensor conv_state_after(const at::Tensor& x, int64_t K) {
  const int64_t L = x.size(1);
  return at::constant_pad_nd(x.transpose(1, 2), {std::max<int64_t>(0, K - 1 - L), 0})
      .narrow(2, -(K - 1), K - 1)
      .contiguous();
}

at::Tensor causal_conv_step(const at::Tensor& x, at::Tensor& state, const torch::nn::Conv1d& conv) {
  const int64_t K = conv->weight.size(2);
  const auto window = at::cat({state, x.unsqueeze(2).to(state.scalar_type())}, 2);  // (B, channels, K)
  state = window.narrow(2, 1, K - 1);
  const auto weight = conv->weight.squeeze(1).to(window.scalar_type());  // (channels, K)
  return (window * weight).sum(2) + conv->bias.to(window.scalar_type());
}

}  // namespace hgpt::model
