// mamba2_block.cpp — the Mamba-2 mixer (mamba_ssm's Mamba2, with our chunked scan) and block, its
// inference state and its sizes.
#include "hgpt/model/mamba2_block.h"

#include "hgpt/model/block_registry.h"
#include "hgpt/model/causal_conv.h"
#include "hgpt/model/documents.h"
#include "hgpt/ops/ssd.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>

namespace hgpt::model {

// ---------------------------------------------------------------------------------------------
// The gated norm

GatedRMSNormImpl::GatedRMSNormImpl(int64_t channels, int64_t groups_) : groups(groups_) {
  weight = register_parameter("weight", at::ones({channels}, at::TensorOptions().dtype(at::kFloat)));
}

at::Tensor GatedRMSNormImpl::forward(const at::Tensor& y, const at::Tensor& z) {
  const auto gated = y.to(at::kFloat) * at::silu(z.to(at::kFloat));
  auto sizes = gated.sizes().vec();
  const int64_t channels = sizes.back(), group_size = channels / groups;
  sizes.back() = groups;
  sizes.push_back(group_size);
  const auto normed = at::rms_norm(gated.view(sizes), {group_size}, std::nullopt, 1e-5);
  return (normed.view(gated.sizes()) * weight).to(y.scalar_type());
}

// ---------------------------------------------------------------------------------------------
// The mixer

Mamba2MixerImpl::Mamba2MixerImpl(const Mamba2Shape& s) : shape(s) {
  const int64_t cd = s.conv_dim(), H = s.nheads();
  in_proj = register_module("in_proj", linear_no_bias(s.dim, s.in_proj_dim()));
  conv1d = register_module(
      "conv1d",
      torch::nn::Conv1d(torch::nn::Conv1dOptions(cd, cd, s.d_conv).groups(cd).padding(s.d_conv - 1).bias(true)));
  auto f32 = at::TensorOptions().dtype(at::kFloat);
  dt_bias = register_parameter("dt_bias", at::empty({H}, f32));
  A_log = register_parameter("A_log", at::empty({H}, f32));
  D = register_parameter("D", at::empty({H}, f32));
  norm = register_module("norm", GatedRMSNorm(s.d_inner(), s.ngroups));
  out_proj = register_module("out_proj", linear_no_bias(s.d_inner(), s.dim));
}

void Mamba2MixerImpl::init_weights() {
  at::NoGradGuard no_grad;
  // The projections as in the Mamba-1 block (the generic init, out_proj zero so that each block
  // starts as the identity); conv1d keeps PyTorch's default (kaiming-uniform) init, as in mamba_ssm.
  init_linear_generic(in_proj);
  init_zero(out_proj);
  // mamba_ssm: dt log-uniform in [1e-3, 1e-1], at least 1e-4, stored as softplus⁻¹(dt) in dt_bias;
  // A = −U(1, 16) per head, stored as A_log; D = 1; the norm's weight 1.
  const double dt_min = 1e-3, dt_max = 1e-1;
  const auto dt =
      at::exp(at::rand({shape.nheads()}, dt_bias.options()) * (std::log(dt_max) - std::log(dt_min)) + std::log(dt_min))
          .clamp_min(1e-4);
  dt_bias.copy_(dt + at::log(-at::expm1(-dt)));
  A_log.copy_(at::log(at::empty_like(A_log).uniform_(1.0, 16.0)));
  D.fill_(1.0);
  norm->weight.fill_(1.0);
}

// The in_proj output's parts, in mamba_ssm's order z, x, B, C, dt (the conv sees x, B, C). One
// split rather than three narrows: its backward assembles the gradient once, where each narrow's
// would zero-fill a whole in_proj-sized gradient.
namespace {
struct Parts {
  at::Tensor z, xBC, dt;
};
Parts split(const at::Tensor& zxbcdt, const Mamba2Shape& s) {
  const auto parts = at::split_with_sizes(zxbcdt, {s.d_inner(), s.conv_dim(), s.nheads()}, -1);
  return {parts[0], parts[1], parts[2]};
}
}  // namespace

at::Tensor Mamba2MixerImpl::forward(const at::Tensor& hidden, Mamba2State* state, const at::Tensor& doc_starts) {
  if (state && state->ssm.defined()) return step(hidden, *state, doc_starts);
  const auto& s = shape;
  const int64_t batch = hidden.size(0), L = hidden.size(1), di = s.d_inner(), GN = s.ngroups * s.d_state;
  const auto parts = split(in_proj(hidden), s);
  if (state) state->conv = conv_state_after(parts.xBC, s.d_conv, doc_starts);
  const auto xBC = at::silu(causal_depthwise_conv(parts.xBC, conv1d, doc_starts));  // (B, L, conv_dim)
  ops::SsdInputs in;
  const auto x_B_C = at::split_with_sizes(xBC, {di, GN, GN}, 2);
  in.x = x_B_C[0].view({batch, L, s.nheads(), s.headdim});
  in.B = x_B_C[1].view({batch, L, s.ngroups, s.d_state});
  in.C = x_B_C[2].view({batch, L, s.ngroups, s.d_state});
  in.dt = at::softplus(parts.dt.to(at::kFloat) + dt_bias);
  in.A = -at::exp(A_log);
  in.chunk_size = s.chunk_size;
  in.reset = doc_starts;
  const auto scan = ops::ssd(in);
  if (state) state->ssm = scan.final_state;
  const auto y = scan.y + in.x * D.view({s.nheads(), 1}).to(in.x.scalar_type());
  return out_proj(norm(y.reshape({batch, L, di}), parts.z));
}

at::Tensor Mamba2MixerImpl::step(const at::Tensor& hidden, Mamba2State& state, const at::Tensor& doc_starts) {
  TORCH_CHECK(hidden.size(1) == 1, "Mamba2Mixer::step takes one position, got ", hidden.size(1));
  state.conv = restart_where(state.conv, doc_starts);
  state.ssm = restart_where(state.ssm, doc_starts);
  const auto& s = shape;
  const int64_t batch = hidden.size(0), di = s.d_inner(), GN = s.ngroups * s.d_state, H = s.nheads();
  const auto parts = split(in_proj(hidden.squeeze(1)), s);  // (B, ·)
  const auto dtype = state.ssm.scalar_type();
  const auto xBC = at::silu(causal_conv_step(parts.xBC, state.conv, conv1d)).to(dtype);
  const auto x = xBC.narrow(1, 0, di).view({batch, H, s.headdim});
  // Each head's group: (B, G, N) → (B, H, N).
  const auto per_head = [&](const at::Tensor& t) {
    return t.reshape({batch, s.ngroups, s.d_state}).repeat_interleave(H / s.ngroups, 1);
  };
  const auto Bm = per_head(xBC.narrow(1, di, GN));
  const auto Cm = per_head(xBC.narrow(1, di + GN, GN));
  const auto delta = at::softplus(parts.dt.to(dtype) + dt_bias.to(dtype));  // (B, H)
  const auto decay = at::exp(delta * -at::exp(A_log.to(dtype)));
  state.ssm = decay.view({batch, H, 1, 1}) * state.ssm + (delta.unsqueeze(-1) * x).unsqueeze(-1) * Bm.unsqueeze(2);
  const auto y = at::matmul(state.ssm, Cm.unsqueeze(-1)).squeeze(-1) + D.to(dtype).view({H, 1}) * x;  // (B, H, P)
  return out_proj(norm(y.reshape({batch, di}).to(hidden.scalar_type()), parts.z)).unsqueeze(1);
}

// ---------------------------------------------------------------------------------------------
// The block

Mamba2BlockImpl::Mamba2BlockImpl(const Mamba2Shape& shape, bool use_mlp) {
  mixer = register_module("mixer", Mamba2Mixer(shape));
  if (use_mlp) mlp = register_module("mlp", MLP(shape.dim));
}

at::Tensor Mamba2BlockImpl::forward(const at::Tensor& x_in, const LayerContext& context) {
  Mamba2State* state = context.state ? &state_as<Mamba2State>(context.state) : nullptr;
  auto x = x_in + mixer->forward(rms_norm(x_in), state, context.doc_starts);
  if (mlp) x = x + mlp(rms_norm(x));
  return x;
}

void Mamba2BlockImpl::init_weights() {
  mixer->init_weights();
  if (mlp) mlp->init_weights();
}

std::unique_ptr<LayerState> Mamba2BlockImpl::new_state(int64_t capacity) const {
  return std::make_unique<Mamba2State>();  // filled by the prefill: its size does not grow with capacity
}

int64_t Mamba2State::bytes() const { return bytes_of(conv) + bytes_of(ssm); }

std::vector<std::string> Mamba2BlockImpl::small_parameters() const {
  std::vector<std::string> names;
  for (const auto& p : mamba2_small_parameters(mixer->shape)) names.push_back(p.name);
  return names;
}

std::vector<SmallParameter> mamba2_small_parameters(const Mamba2Shape& s) {
  const int64_t H = s.nheads();
  return {{"mixer.A_log", H},
          {"mixer.D", H},
          {"mixer.dt_bias", H},
          {"mixer.conv1d.weight", s.conv_dim() * s.d_conv},
          {"mixer.conv1d.bias", s.conv_dim()},
          {"mixer.norm.weight", s.d_inner()}};
}

// ---------------------------------------------------------------------------------------------
// The kind's entry points (model/block_registry.h)

namespace {
Mamba2Shape mamba2_shape(const ModelConfig& c) {
  return {c.model_dim(),    c.mamba2_d_state, c.mamba_d_conv,     c.mamba_expand,
          c.mamba2_headdim, c.mamba2_ngroups, c.mamba2_chunk_size};
}
}  // namespace

std::shared_ptr<BlockImpl> make_mamba2_block(const ModelConfig& c) {
  return Mamba2Block(mamba2_shape(c), c.mamba_use_mlp).ptr();
}

BlockSizes mamba2_block_sizes(const ModelConfig& c, bool cuda) {
  const auto s = mamba2_shape(c);
  const int64_t d = c.model_dim(), di = s.d_inner(), N = s.d_state, H = s.nheads(), GN = s.ngroups * N;
  const int64_t Q = std::min(s.chunk_size, c.sequence_len);  // the scan's chunk at the training length
  const int64_t f = 4, a = cuda ? 2 : 4;
  BlockSizes b;
  const int64_t mlp = c.mamba_use_mlp ? 8 * d * d : 0;
  b.matmul_params = d * s.in_proj_dim() + di * d + mlp;                        // in_proj, out_proj
  for (const auto& p : mamba2_small_parameters(s)) b.small_params += p.numel;  // A_log, D, dt_bias, conv1d, norm
  // The chunked scan's matrix products per token, forward and backward (ssd.cpp): C·Bᵀ per group
  // (Q·N, four times with the backward's recomputation and two gradients), the products with the
  // decay-masked matrix (Q·headdim per head: forward, dM, dU), and the eight state products
  // (headdim·d_state per head: own state, from state, and their gradients); then the conv.
  b.extra_flops_per_token = 2.0 * (4.0 * Q * GN + 3.0 * Q * di + 6.0 * di * N) + 6.0 * s.conv_dim() * s.d_conv;
  // x, norm(x) | in_proj's output (kept whole: z is a view of it), the padded conv input, the
  // conv's output, SiLU's output (the scan's x, B and C), Δ and its pre-softplus input, the states
  // at each chunk start; y + D·x, SiLU(z), the gated product, the norm's output and out_proj's
  // input; with the MLP: its input and norm, relu(c_fc), relu².
  b.activation_bytes_per_token = 2 * d * f + a * (s.in_proj_dim() + 3 * s.conv_dim() + di) + f * (2 * H) +
                                 f * di * N / Q + f * 3 * di + a * di + (c.mamba_use_mlp ? 2 * d * f + 8 * d * a : 0);
  // Document resets: the conv's d_conv − 1 masked taps, kept for its backward.
  if (c.document_boundaries == DocumentBoundaries::Reset)
    b.activation_bytes_per_token += (c.mamba_d_conv - 1) * s.conv_dim() * a;
  // The scan's backward holds (batch, chunk, head, Q, Q) fp32 buffers while it runs, Q·nheads floats
  // each per token: about four with the fused CPU mask (the masked C·Bᵀ, dM and the products'
  // blocks), about eight with the ATen ops other devices run (also the mask, its gradient and the
  // segment sums' backward). Measured against the CPU peak (test_memory_estimate.cpp).
  b.workspace_bytes_per_token = (cuda ? 8 : 4) * 4 * Q * H;
  return b;
}

}  // namespace hgpt::model
