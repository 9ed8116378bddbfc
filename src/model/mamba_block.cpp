// mamba_block.cpp — the Mamba mixer (mamba_simple.py's slow path, with our scan) and block, its
// inference state and its sizes.
#include "hgpt/model/mamba_block.h"

#include "hgpt/model/block_registry.h"
#include "hgpt/model/causal_conv.h"
#include "hgpt/model/documents.h"
#include "hgpt/ops/selective_scan.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>

namespace hgpt::model {

MambaMixerImpl::MambaMixerImpl(const MambaShape& s) : shape(s) {
  const int64_t di = s.d_inner(), r = s.dt_rank();
  in_proj = register_module("in_proj", linear_no_bias(s.dim, 2 * di));
  conv1d = register_module(
      "conv1d",
      torch::nn::Conv1d(torch::nn::Conv1dOptions(di, di, s.d_conv).groups(di).padding(s.d_conv - 1).bias(true)));
  x_proj = register_module("x_proj", linear_no_bias(di, r + 2 * s.d_state));
  dt_proj = register_module("dt_proj", torch::nn::Linear(torch::nn::LinearOptions(r, di).bias(true)));
  out_proj = register_module("out_proj", linear_no_bias(di, s.dim));
  auto f32 = at::TensorOptions().dtype(at::kFloat);
  A_log = register_parameter("A_log", at::empty({di, s.d_state}, f32));
  D = register_parameter("D", at::empty({di}, f32));
}

void MambaMixerImpl::init_weights() {
  at::NoGradGuard no_grad;
  const int64_t di = shape.d_inner(), r = shape.dt_rank();
  init_linear_generic(in_proj);
  init_linear_generic(x_proj);
  init_zero(out_proj);
  // conv1d keeps PyTorch's default (kaiming-uniform) init, as in mamba.
  // A = -[1..N] per channel, stored as A_log = log(1..N); D = 1.
  A_log.copy_(at::log(at::arange(1, shape.d_state + 1, A_log.options())).expand({di, shape.d_state}));
  D.fill_(1.0);
  // dt_proj: weight ~ U(±dt_rank^-0.5); bias = softplus⁻¹(dt), dt log-uniform in [1e-3, 1e-1], ≥ 1e-4.
  const double dt_init_std = std::pow(static_cast<double>(r), -0.5);
  dt_proj->weight.uniform_(-dt_init_std, dt_init_std);
  const double dt_min = 1e-3, dt_max = 1e-1;
  auto dt = at::exp(at::rand({di}, dt_proj->bias.options()) * (std::log(dt_max) - std::log(dt_min)) + std::log(dt_min))
                .clamp_min(1e-4);
  dt_proj->bias.copy_(dt + at::log(-at::expm1(-dt)));
}

// Every activation stays (B, L, channels), the layout of the linear layers: no transposed copies.
// The scan takes (B, channels, L) views of them, which its CPU kernel reads in place.
// With a state (inference), the prefill also leaves the conv and SSM states for decoding, and a
// state that is already filled means one decoding step.
at::Tensor MambaMixerImpl::forward(const at::Tensor& hidden, MambaState* state, const at::Tensor& doc_starts) {
  if (state && state->ssm.defined()) return step(hidden, *state, doc_starts);
  const int64_t di = shape.d_inner(), r = shape.dt_rank(), N = shape.d_state;
  const auto xz = in_proj(hidden);  // (B, L, 2·di)
  // the conv's next window starts with the last d_conv−1 inputs (zeros before the start)
  if (state) state->conv = conv_state_after(xz.narrow(2, 0, di), shape.d_conv, doc_starts);
  const auto x = at::silu(causal_depthwise_conv(xz.narrow(2, 0, di), conv1d, doc_starts));  // (B, L, di)
  const auto x_dbl = x_proj(x);                                                             // (B, L, r + 2N)
  // dt_proj's weight only: its bias enters the scan as delta_bias (before the softplus).
  const auto delta = at::linear(x_dbl.narrow(2, 0, r), dt_proj->weight);  // (B, L, di)

  ops::ScanInputs in;
  in.u = x.transpose(1, 2);
  in.delta = delta.transpose(1, 2);
  in.A = -at::exp(A_log.to(at::kFloat));
  in.B = x_dbl.narrow(2, r, N).transpose(1, 2);      // (B, N, L)
  in.C = x_dbl.narrow(2, r + N, N).transpose(1, 2);  // (B, N, L)
  in.D_skip = D.to(at::kFloat);
  in.z = xz.narrow(2, di, di).transpose(1, 2);
  in.delta_bias = dt_proj->bias.to(at::kFloat);
  in.reset = doc_starts;
  in.delta_softplus = true;
  auto scan = ops::selective_scan(in, /*return_last_state=*/state != nullptr);  // y: (B, di, L)
  if (state) state->ssm = scan.last_state;
  return out_proj(scan.out.transpose(1, 2));
}

// The recurrence of the scan (see selective_scan.h) for one position, computed in the state's
// dtype:
//   conv window = [conv state, x]; x = SiLU(bias + Σ_k w_k · window_k); (dt, B, C) = x_proj(x)
//   Δ = softplus(dt_proj.weight · dt + dt_proj.bias); h = exp(Δ·A)·h + Δ·B·x
//   y = C·h + D·x; out = out_proj(y · SiLU(z))
at::Tensor MambaMixerImpl::step(const at::Tensor& hidden, MambaState& state, const at::Tensor& doc_starts) {
  TORCH_CHECK(hidden.size(1) == 1, "MambaMixer::step takes one position, got ", hidden.size(1));
  state.conv = restart_where(state.conv, doc_starts);
  state.ssm = restart_where(state.ssm, doc_starts);
  const int64_t di = shape.d_inner(), r = shape.dt_rank(), N = shape.d_state;
  const auto xz = in_proj(hidden.squeeze(1));  // (B, 2·di)
  const auto z = xz.narrow(1, di, di);
  const auto x = at::silu(causal_conv_step(xz.narrow(1, 0, di), state.conv, conv1d));
  const auto x_dbl = x_proj(x);  // (B, r + 2N)
  const auto dt = x_dbl.narrow(1, 0, r);
  const auto dtype = state.ssm.scalar_type();
  const auto Bm = x_dbl.narrow(1, r, N).to(dtype).unsqueeze(1);      // (B, 1, N)
  const auto Cm = x_dbl.narrow(1, r + N, N).to(dtype).unsqueeze(1);  // (B, 1, N)
  const auto delta = at::softplus(at::matmul(dt, dt_proj->weight.t()).to(dtype) + dt_proj->bias.to(dtype));
  const auto u = x.to(dtype);
  const auto A = -at::exp(A_log.to(dtype));  // (di, N)
  const auto dA = at::exp(delta.unsqueeze(2) * A);
  state.ssm = dA * state.ssm + (delta * u).unsqueeze(2) * Bm;
  const auto y = (state.ssm * Cm).sum(2) + D.to(dtype) * u;
  return out_proj((y * at::silu(z.to(dtype))).to(x.scalar_type())).unsqueeze(1);
}

MambaBlockImpl::MambaBlockImpl(const MambaShape& shape, bool use_mlp) {
  mixer = register_module("mixer", MambaMixer(shape));
  if (use_mlp) mlp = register_module("mlp", MLP(shape.dim));
}

at::Tensor MambaBlockImpl::forward(const at::Tensor& x_in, const LayerContext& context) {
  MambaState* state = context.state ? &state_as<MambaState>(context.state) : nullptr;
  auto x = x_in + mixer->forward(rms_norm(x_in), state, context.doc_starts);
  if (mlp) x = x + mlp(rms_norm(x));
  return x;
}

void MambaBlockImpl::init_weights() {
  mixer->init_weights();
  if (mlp) mlp->init_weights();
}

std::unique_ptr<LayerState> MambaBlockImpl::new_state(int64_t capacity) const {
  return std::make_unique<MambaState>();  // filled by the prefill: its size does not grow with capacity
}

int64_t MambaState::bytes() const { return bytes_of(conv) + bytes_of(ssm); }

std::vector<std::string> MambaBlockImpl::small_parameters() const {
  std::vector<std::string> names;
  for (const auto& p : mamba_small_parameters(mixer->shape)) names.push_back(p.name);
  return names;
}

std::vector<SmallParameter> mamba_small_parameters(const MambaShape& s) {
  const int64_t di = s.d_inner();
  return {{"mixer.A_log", di * s.d_state},
          {"mixer.D", di},
          {"mixer.conv1d.weight", di * s.d_conv},
          {"mixer.conv1d.bias", di},
          {"mixer.dt_proj.bias", di}};
}

// ---------------------------------------------------------------------------------------------
// The kind's entry points (model/block_registry.h)

namespace {
MambaShape mamba_shape(const ModelConfig& c) {
  return {c.model_dim(), c.mamba_d_state, c.mamba_d_conv, c.mamba_expand};
}
}  // namespace

std::shared_ptr<BlockImpl> make_mamba_block(const ModelConfig& c) {
  return MambaBlock(mamba_shape(c), c.mamba_use_mlp).ptr();
}

BlockSizes mamba_block_sizes(const ModelConfig& c, bool cuda) {
  const auto shape = mamba_shape(c);
  const int64_t d = c.model_dim(), di = shape.d_inner(), r = shape.dt_rank(), N = c.mamba_d_state;
  const int64_t f = 4, a = cuda ? 2 : 4;
  BlockSizes s;
  const int64_t mlp = c.mamba_use_mlp ? 8 * d * d : 0;
  s.matmul_params = d * 2 * di + di * (r + 2 * N) + r * di + di * d + mlp;        // in_proj, x_proj, dt_proj, out_proj
  for (const auto& p : mamba_small_parameters(shape)) s.small_params += p.numel;  // A_log, D, conv1d, dt_proj.bias
  s.extra_flops_per_token = 27.0 * di * N + 6.0 * di * c.mamba_d_conv;            // the scan and the conv
  // x, norm(x) | the padded conv input, conv output, silu output (the scan's u), Δ, z, the scan
  // output; x_proj's output (dt, B, C) and B, C made contiguous; the scan's state checkpoints;
  // with the MLP: its input and norm, relu(c_fc), relu².
  s.activation_bytes_per_token = 2 * d * f + 6 * di * a + (r + 4 * N) * a +
                                 f * di * N / ops::scan_checkpoint_interval(cuda) +
                                 (c.mamba_use_mlp ? 2 * d * f + 8 * d * a : 0);
  // Document resets: the conv's d_conv − 1 masked taps, kept for its backward.
  if (c.document_boundaries == DocumentBoundaries::Reset) s.activation_bytes_per_token += (c.mamba_d_conv - 1) * di * a;
  return s;
}

}  // namespace hgpt::model
