// lm_loss.cpp — chunked lm_head + soft-cap + cross-entropy as one autograd function.
//
// Forward, per chunk of rows: z = hidden·Wᵀ (matmul dtype, then fp32), c = s·tanh(z/s),
// lse = logsumexp(c), loss = lse − c[target]. Saved: hidden (in the matmul dtype), W, targets and
// lse (one float per row). Backward, per chunk: recompute c, then
//   ∂loss/∂c = softmax(c) − onehot(target)   (softmax = exp(c − lse), from the saved lse)
//   ∂c/∂z    = 1 − (c/s)²                    (tanh' from tanh's output, as tanh's own backward)
// and dhidden = dz·W, dW += dzᵀ·hidden (fp32 accumulation over chunks).
#include "hgpt/model/lm_loss.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>

namespace hgpt::model {

int64_t loss_chunk_rows(int64_t vocab_size) {
  return std::max<int64_t>(1, (int64_t{1} << 24) / std::max<int64_t>(1, vocab_size));
}

namespace {

// The dtype lm_head's matmul would run in: autocast's on this device, else the input's own.
at::ScalarType matmul_dtype(const at::Tensor& hidden) {
  const auto device = hidden.device().type();
  return at::autocast::is_autocast_enabled(device) ? at::autocast::get_autocast_dtype(device) : hidden.scalar_type();
}

// Everything after the matmul is fp32 (fp64 for fp64 inputs, so tests can compare exactly).
at::ScalarType loss_dtype(at::ScalarType matmul) { return matmul == at::kDouble ? at::kDouble : at::kFloat; }

// Soft-capped logits of a chunk in the loss dtype; hidden and weight already in the matmul dtype.
at::Tensor capped_logits(const at::Tensor& hidden, const at::Tensor& weight, double softcap) {
  auto z = at::matmul(hidden, weight.t()).to(loss_dtype(hidden.scalar_type()));
  return z.div_(softcap).tanh_().mul_(softcap);
}

class SoftcapCrossEntropyFn : public torch::autograd::Function<SoftcapCrossEntropyFn> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& hidden, const at::Tensor& weight,
                            const at::Tensor& targets, double softcap, int64_t chunk_rows) {
    const auto dtype = matmul_dtype(hidden);
    const auto h = hidden.to(dtype), w = weight.to(dtype);
    const int64_t n = hidden.size(0);
    auto losses = at::empty({n}, hidden.options().dtype(loss_dtype(dtype)));
    auto lse = at::empty({n}, losses.options());
    for (int64_t r0 = 0; r0 < n; r0 += chunk_rows) {
      const int64_t rows = std::min(chunk_rows, n - r0);
      const auto t = targets.narrow(0, r0, rows);
      const auto c = capped_logits(h.narrow(0, r0, rows), w, softcap);
      const auto chunk_lse = at::logsumexp(c, {1});
      const auto picked = c.gather(1, t.clamp_min(0).unsqueeze(1)).squeeze(1);
      lse.narrow(0, r0, rows).copy_(chunk_lse);
      losses.narrow(0, r0, rows).copy_(at::where(t.ne(-1), chunk_lse - picked, at::zeros_like(picked)));
    }
    ctx->save_for_backward({h, weight, targets, lse});
    ctx->saved_data["softcap"] = softcap;
    ctx->saved_data["chunk_rows"] = chunk_rows;
    ctx->saved_data["hidden_dtype"] = static_cast<int64_t>(hidden.scalar_type());
    return losses;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &h = saved[0], &weight = saved[1], &targets = saved[2], &lse = saved[3];
    const double softcap = ctx->saved_data["softcap"].toDouble();
    const int64_t chunk_rows = ctx->saved_data["chunk_rows"].toInt();
    const auto hidden_dtype = static_cast<at::ScalarType>(ctx->saved_data["hidden_dtype"].toInt());
    const auto acc = loss_dtype(h.scalar_type());
    const auto grad_loss = grads[0].to(acc);
    const auto w = weight.to(h.scalar_type());
    const int64_t n = h.size(0);
    auto dhidden = at::empty(h.sizes(), h.options().dtype(hidden_dtype));
    auto dweight = at::zeros(weight.sizes(), weight.options().dtype(acc));
    for (int64_t r0 = 0; r0 < n; r0 += chunk_rows) {
      const int64_t rows = std::min(chunk_rows, n - r0);
      const auto t = targets.narrow(0, r0, rows);
      const auto hc = h.narrow(0, r0, rows);
      auto c = capped_logits(hc, w, softcap);
      const auto g = at::where(t.ne(-1), grad_loss.narrow(0, r0, rows), at::zeros({}, grad_loss.options()));
      auto dc = (c - lse.narrow(0, r0, rows).unsqueeze(1)).exp_().mul_(g.unsqueeze(1));  // softmax·g
      dc.scatter_add_(1, t.clamp_min(0).unsqueeze(1), g.neg().unsqueeze(1));             // − onehot·g
      const auto dz = dc.mul_(c.div_(softcap).square_().neg_().add_(1.0)).to(h.scalar_type());
      dhidden.narrow(0, r0, rows).copy_(at::matmul(dz, w));
      dweight.add_(at::matmul(dz.t(), hc));
    }
    return {dhidden, dweight.to(weight.scalar_type()), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor softcapped_cross_entropy(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& targets,
                                    double softcap, int64_t chunk_rows) {
  TORCH_CHECK(hidden.dim() == 2 && weight.dim() == 2 && hidden.size(1) == weight.size(1),
              "softcapped_cross_entropy: hidden (N, d) and weight (V, d) expected, got ", hidden.sizes(), " and ",
              weight.sizes());
  TORCH_CHECK(targets.dim() == 1 && targets.size(0) == hidden.size(0),
              "softcapped_cross_entropy: targets (N) expected, got ", targets.sizes());
  TORCH_CHECK(chunk_rows > 0, "softcapped_cross_entropy: chunk_rows must be positive, got ", chunk_rows);
  return SoftcapCrossEntropyFn::apply(hidden, weight, targets, softcap, chunk_rows);
}

}  // namespace hgpt::model
