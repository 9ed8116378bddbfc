// ssd.cpp — Mamba-2's chunked scan (ssd.h): the forward, the recomputing backward, and the autograd
// op around them.
//
// Layout. Every per-head tensor is brought to (batch, chunk, head, Q, ·) and every per-group one to
// (batch, chunk, group, Q, ·), zero-padded to a whole number of chunks (padding has dt = 0, so it
// neither decays nor feeds the state, and the final state is that of the last real token). Heads
// of one group sit next to each other, so a head tensor viewed (batch, chunk, group, head-in-group,
// Q, ·) meets its group's B and C by broadcasting.
//
// Per chunk, with a = dt·A and seg[t][s] = a_{s+1} + … + a_t (s ≤ t):
//   decay mask   Lm[t][s] = exp(seg[t][s]) for s ≤ t, else 0
//   inside       Y  = (C·Bᵀ ∘ Lm) · U,  U = dt ∘ x
//   own state    S  = (U ∘ w)ᵀ · B,     w_s = exp(seg[Q−1][s])         (headdim, d_state)
//   recurrence   H_{c+1} = exp(Σ a) · H_c + S_c,  H_0 = initial_state
//   from state   Y += exp(acum_t) · (C · H_cᵀ),   acum_t = a_0 + … + a_t
// Document resets are masks on these decays (never an infinite a): with k_t the number of
// document starts among the chunk's steps 0..t, Lm[t][s] needs k_t = k_s, w_s needs k_s = k_{Q−1},
// exp(acum_t) needs k_t = 0 and the chunk decay k_{Q−1} = 0. The masks are constants, so the
// backward applies the same ones to the gradients that flow through those decays.
// The matrix products run through ATen's batched GEMMs. The non-GEMM parts are in ssd_parts.h:
// the decay mask applied to C·Bᵀ and its backward (fused loops where the tensors are on a CPU,
// ATen ops elsewhere), and the chunk-to-chunk recurrence.
#include "hgpt/ops/ssd.h"

#include "ssd_parts.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <optional>
#include <vector>

namespace hgpt::ops {
namespace {

using detail::MaskedDecay;

struct Dims {
  int64_t batch, L, heads, headdim, groups, dstate, Q, chunks;
  int64_t padded() const { return chunks * Q; }
};

Dims dims_of(const at::Tensor& x, const at::Tensor& B, int64_t chunk_size) {
  Dims d;
  d.batch = x.size(0);
  d.L = x.size(1);
  d.heads = x.size(2);
  d.headdim = x.size(3);
  d.groups = B.size(2);
  d.dstate = B.size(3);
  d.Q = std::max<int64_t>(1, std::min(chunk_size, d.L));  // a short sequence is one short chunk
  d.chunks = (d.L + d.Q - 1) / d.Q;
  return d;
}

at::ScalarType compute_dtype(const at::Tensor& x) { return x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat; }

// (batch, L, n, k) → (batch, chunk, n, Q, k) in `dtype`, zero-padded; (batch, L, n) → (batch, chunk, n, Q).
at::Tensor to_chunks(const at::Tensor& t, const Dims& d, at::ScalarType dtype) {
  auto padded = t.to(dtype);
  if (d.padded() > d.L) {
    auto sizes = t.sizes().vec();
    sizes[1] = d.padded() - d.L;
    padded = at::cat({padded, at::zeros(sizes, padded.options())}, 1);
  }
  auto sizes = padded.sizes().vec();
  sizes[1] = d.Q;
  sizes.insert(sizes.begin() + 1, d.chunks);
  const auto chunked = padded.view(sizes);  // (batch, chunk, Q, n[, k])
  return t.dim() == 4 ? chunked.permute({0, 1, 3, 2, 4}).contiguous() : chunked.permute({0, 1, 3, 2}).contiguous();
}

// The inverse of to_chunks, cast to `dtype`.
at::Tensor from_chunks(const at::Tensor& t, const Dims& d, at::ScalarType dtype) {
  at::Tensor seq;
  if (t.dim() == 5) {
    seq = t.permute({0, 1, 3, 2, 4}).reshape({d.batch, d.padded(), t.size(2), t.size(4)});
  } else {
    seq = t.permute({0, 1, 3, 2}).reshape({d.batch, d.padded(), t.size(2)});
  }
  return seq.narrow(1, 0, d.L).to(dtype);
}

// Head tensors by group (ssd_parts.h) and back.
at::Tensor by_group(const at::Tensor& t, const Dims& d) { return detail::by_group(t, d.groups); }
at::Tensor by_head(const at::Tensor& t, const Dims& d) {
  return t.reshape({d.batch, d.chunks, d.heads, t.size(-2), t.size(-1)});
}

// ---- Products with the causal (lower-triangular) Q × Q matrices, in blocks of kTriangleBlock rows:
// only the blocks on and below the diagonal are multiplied (about 5/8 of the work at Q = 256).
constexpr int64_t kTriangleBlock = 64;

// M·U for M (…, Q, Q) zero above the diagonal and U (…, Q, k).
at::Tensor lower_times(const at::Tensor& M, const at::Tensor& U) {
  const int64_t Q = M.size(-1);
  if (Q <= kTriangleBlock) return at::matmul(M, U);
  std::vector<at::Tensor> rows;
  for (int64_t i = 0; i < Q; i += kTriangleBlock) {
    const int64_t n = std::min(kTriangleBlock, Q - i);
    rows.push_back(at::matmul(M.narrow(-2, i, n).narrow(-1, 0, i + n), U.narrow(-2, 0, i + n)));
  }
  return at::cat(rows, -2);
}

// Mᵀ·G for the same M and G (…, Q, k).
at::Tensor lower_transposed_times(const at::Tensor& M, const at::Tensor& G) {
  const int64_t Q = M.size(-1);
  if (Q <= kTriangleBlock) return at::matmul(M.transpose(-1, -2), G);
  std::vector<at::Tensor> rows;
  for (int64_t j = 0; j < Q; j += kTriangleBlock) {
    const int64_t n = std::min(kTriangleBlock, Q - j);
    rows.push_back(at::matmul(M.narrow(-2, j, Q - j).narrow(-1, j, n).transpose(-1, -2), G.narrow(-2, j, Q - j)));
  }
  return at::cat(rows, -2);
}

// G·Uᵀ (…, Q, Q) on and below the diagonal blocks; zero in the blocks above.
at::Tensor lower_outer(const at::Tensor& G, const at::Tensor& U) {
  const int64_t Q = G.size(-2);
  if (Q <= kTriangleBlock) return at::matmul(G, U.transpose(-1, -2));
  auto sizes = G.sizes().vec();
  sizes.back() = Q;
  auto out = at::zeros(sizes, G.options());
  for (int64_t i = 0; i < Q; i += kTriangleBlock) {
    const int64_t n = std::min(kTriangleBlock, Q - i);
    out.narrow(-2, i, n)
        .narrow(-1, 0, i + n)
        .copy_(at::matmul(G.narrow(-2, i, n), U.narrow(-2, 0, i + n).transpose(-1, -2)));
  }
  return out;
}

// What forward and backward both compute from the inputs.
struct Recomputed {
  Dims d;
  at::Tensor xc, dtc, Bc, Cc;  // chunked inputs
  at::Tensor a;                // dt·A (batch, chunk, head, Q)
  at::Tensor CB;               // (batch, chunk, group, Q, Q): C·Bᵀ
  MaskedDecay decay;           // M = CB ∘ Lm and the decays (document masks applied)
  at::Tensor U;                // (batch, chunk, head, Q, headdim): dt ∘ x
  at::Tensor same_document;    // (batch, chunk, 1, Q, Q), 1 where steps t and s share a document; undefined: no resets
};

// The document masks (see the top of the file) applied to the chunk's decays.
void mask_documents(Recomputed& r, const at::Tensor& reset) {
  const auto dtype = r.a.scalar_type();
  const auto k = to_chunks(reset.unsqueeze(-1), r.d, dtype).cumsum(-1);  // (batch, chunk, 1, Q)
  const auto k_last = k.narrow(-1, r.d.Q - 1, 1);
  r.same_document = k.unsqueeze(-1).eq(k.unsqueeze(-2)).to(dtype);
  r.decay.M.mul_(r.same_document);
  r.decay.w = r.decay.w * k.eq(k_last).to(dtype);
  r.decay.acum_exp = r.decay.acum_exp * k.eq(0).to(dtype);
  r.decay.chunk_decay = r.decay.chunk_decay * k_last.squeeze(-1).eq(0).to(dtype);
}

Recomputed recompute(const at::Tensor& x, const at::Tensor& dt, const at::Tensor& A, const at::Tensor& B,
                     const at::Tensor& C, const at::Tensor& reset, int64_t chunk_size) {
  Recomputed r;
  r.d = dims_of(x, B, chunk_size);
  const auto dtype = compute_dtype(x);
  r.xc = to_chunks(x, r.d, dtype);
  r.dtc = to_chunks(dt, r.d, dtype);
  r.Bc = to_chunks(B, r.d, dtype);
  r.Cc = to_chunks(C, r.d, dtype);
  r.a = r.dtc * A.to(dtype).view({1, 1, -1, 1});
  r.CB = at::matmul(r.Cc, r.Bc.transpose(-1, -2));
  r.decay = detail::masked_decay(r.a, r.CB);
  if (reset.defined()) mask_documents(r, reset);
  r.U = r.xc * r.dtc.unsqueeze(-1);
  return r;
}

struct Forward {
  at::Tensor y, final_state, chunk_states;  // chunk_states: (batch, chunk, head, headdim, d_state), H_c
};

Forward ssd_forward(const at::Tensor& x, const at::Tensor& dt, const at::Tensor& A, const at::Tensor& B,
                    const at::Tensor& C, const at::Tensor& reset, const at::Tensor& initial_state, int64_t chunk_size) {
  const Recomputed r = recompute(x, dt, A, B, C, reset, chunk_size);
  const Dims& d = r.d;
  auto Y = lower_times(r.decay.M, r.U);  // inside each chunk
  const auto Uw = r.U * r.decay.w.unsqueeze(-1);
  const auto own = by_head(at::matmul(by_group(Uw, d).transpose(-1, -2), r.Bc.unsqueeze(3)), d);
  Forward f;
  const auto init = initial_state.defined() ? initial_state.to(own.scalar_type()) : at::Tensor();
  f.chunk_states = detail::chunk_recurrence(own, r.decay.chunk_decay, init, f.final_state);
  const auto from_state = at::matmul(r.Cc.unsqueeze(3), by_group(f.chunk_states, d).transpose(-1, -2));
  Y.add_(by_head(from_state, d) * r.decay.acum_exp.unsqueeze(-1));
  f.y = from_chunks(Y, d, x.scalar_type());
  return f;
}

struct Grads {
  at::Tensor dx, ddt, dA, dB, dC, dinit;
};

Grads ssd_backward(const at::Tensor& x, const at::Tensor& dt, const at::Tensor& A, const at::Tensor& B,
                   const at::Tensor& C, const at::Tensor& reset, const at::Tensor& chunk_states, const at::Tensor& dy,
                   const at::Tensor& dfinal, int64_t chunk_size, bool has_initial_state) {
  const Recomputed r = recompute(x, dt, A, B, C, reset, chunk_size);
  const Dims& d = r.d;
  const auto dtype = r.xc.scalar_type();
  const auto dY = dy.defined() ? to_chunks(dy, d, dtype) : at::zeros_like(r.U);

  // Output from the chunk's starting state: Y += exp(acum) ∘ (C·Hᵀ).
  const auto dZ = dY * r.decay.acum_exp.unsqueeze(-1);
  const auto dH_out = by_head(at::matmul(by_group(dZ, d).transpose(-1, -2), r.Cc.unsqueeze(3)), d);
  const auto dZH = at::matmul(by_group(dZ, d), by_group(chunk_states, d));  // (…, group, hg, Q, d_state)
  auto dC = dZH.sum(3);
  const auto dacum = by_head(dZH * r.Cc.unsqueeze(3), d).sum(-1);  // d/d acum_t, (batch, chunk, head, Q)

  // The chunk-to-chunk recurrence, backwards: the gradient of each chunk's own state and of its decay.
  at::Tensor dinit, dlog_decay;
  const auto dOwn = detail::chunk_recurrence_backward(
      dH_out, chunk_states, r.decay.chunk_decay, dfinal.defined() ? dfinal.to(dtype) : at::Tensor(), dinit, dlog_decay);

  // Inside the chunk: Y = M·U with M = CB ∘ Lm.
  auto dM = lower_outer(dY, r.U);
  if (r.same_document.defined()) dM.mul_(r.same_document);  // M's document mask, on its gradient
  auto dU = lower_transposed_times(r.decay.M, dY);
  at::Tensor dCB, da_mask;
  detail::masked_decay_backward(r.a, r.CB, dM, dCB, da_mask);

  // The chunk's own state: S = (U ∘ w)ᵀ · B.
  const auto V = by_head(at::matmul(r.Bc.unsqueeze(3), by_group(dOwn, d).transpose(-1, -2)), d);  // B·dSᵀ
  const auto w = r.decay.w.unsqueeze(-1);
  const auto dR = r.decay.w * (r.U * V).sum(-1);  // d/d log w_s
  dU.add_(V * w);
  auto dB = at::matmul(by_group(r.U * w, d), by_group(dOwn, d)).sum(3);
  dC.add_(at::matmul(dCB, r.Bc));
  dB.add_(at::matmul(dCB.transpose(-1, -2), r.Cc));

  // Every path back to a = dt·A: the mask, acum, w and the chunk decay.
  const auto da = da_mask + detail::suffix_sum(dacum) + detail::exclusive_prefix_sum(dR) + dlog_decay.unsqueeze(-1);
  const auto Ac = A.to(dtype).view({1, 1, d.heads, 1});
  Grads g;
  g.dx = from_chunks(dU * r.dtc.unsqueeze(-1), d, x.scalar_type());
  g.ddt = from_chunks((r.xc * dU).sum(-1) + da * Ac, d, dt.scalar_type());
  g.dA = (da * r.dtc).sum({0, 1, 3}).to(A.scalar_type());
  g.dB = from_chunks(dB, d, B.scalar_type());
  g.dC = from_chunks(dC, d, C.scalar_type());
  if (has_initial_state) g.dinit = dinit;
  return g;
}

// The autograd op: saves the inputs and the state at each chunk start; backward recomputes the rest.
class SsdFn : public torch::autograd::Function<SsdFn> {
 public:
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                                                const at::Tensor& dt, const at::Tensor& A, const at::Tensor& B,
                                                const at::Tensor& C, const std::optional<at::Tensor>& initial_state,
                                                const std::optional<at::Tensor>& reset_opt, int64_t chunk_size) {
    const auto init = initial_state.value_or(at::Tensor());
    const auto reset = reset_opt.value_or(at::Tensor());
    auto f = ssd_forward(x, dt, A, B, C, reset, init, chunk_size);
    ctx->save_for_backward({x, dt, A, B, C, reset, f.chunk_states});
    ctx->saved_data["chunk_size"] = chunk_size;
    ctx->saved_data["has_initial_state"] = init.defined();
    return {f.y, f.final_state};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto s = ctx->get_saved_variables();
    const bool has_init = ctx->saved_data["has_initial_state"].toBool();
    auto g = ssd_backward(s[0], s[1], s[2], s[3], s[4], s[5], s[6], grad_outputs[0], grad_outputs[1],
                          ctx->saved_data["chunk_size"].toInt(), has_init);
    return {g.dx, g.ddt, g.dA, g.dB, g.dC, g.dinit, at::Tensor(), at::Tensor()};  // reset, chunk_size: none
  }
};

}  // namespace

void check_ssd_inputs(const SsdInputs& in) {
  for (auto [t, name] : {std::pair{&in.x, "x"}, {&in.dt, "dt"}, {&in.A, "A"}, {&in.B, "B"}, {&in.C, "C"}})
    TORCH_CHECK(t->defined(), "ssd: ", name, " is missing");
  TORCH_CHECK(in.x.dim() == 4, "ssd: x must be (batch, L, nheads, headdim), got ", in.x.sizes());
  const int64_t batch = in.x.size(0), L = in.x.size(1), heads = in.x.size(2);
  TORCH_CHECK(in.dt.dim() == 3 && in.dt.size(0) == batch && in.dt.size(1) == L && in.dt.size(2) == heads,
              "ssd: dt must be (batch, L, nheads) = (", batch, ", ", L, ", ", heads, "), got ", in.dt.sizes());
  TORCH_CHECK(in.A.dim() == 1 && in.A.size(0) == heads, "ssd: A must be (nheads) = (", heads, "), got ", in.A.sizes());
  TORCH_CHECK(in.B.dim() == 4 && in.B.size(0) == batch && in.B.size(1) == L,
              "ssd: B must be (batch, L, ngroups, d_state), got ", in.B.sizes());
  TORCH_CHECK(in.C.sizes() == in.B.sizes(), "ssd: C must have B's shape ", in.B.sizes(), ", got ", in.C.sizes());
  const int64_t groups = in.B.size(2);
  TORCH_CHECK(groups >= 1 && heads % groups == 0, "ssd: nheads (", heads, ") must be a multiple of ngroups (", groups,
              ")");
  for (auto [t, name] : {std::pair{&in.dt, "dt"}, {&in.A, "A"}}) {
    TORCH_CHECK(t->scalar_type() == at::kFloat || t->scalar_type() == at::kDouble, "ssd: ", name,
                " must be fp32 (or fp64), got ", t->scalar_type());
  }
  TORCH_CHECK(in.chunk_size >= 1, "ssd: chunk_size must be positive, got ", in.chunk_size);
  if (in.initial_state.defined()) {
    const std::vector<int64_t> want{batch, heads, in.x.size(3), in.B.size(3)};
    TORCH_CHECK(in.initial_state.sizes() == at::IntArrayRef(want), "ssd: initial_state must be ", at::IntArrayRef(want),
                ", got ", in.initial_state.sizes());
  }
  if (in.reset.defined()) {
    TORCH_CHECK(in.reset.scalar_type() == at::kBool && in.reset.dim() == 2 && in.reset.size(0) == batch &&
                    in.reset.size(1) == L,
                "ssd: reset must be a bool (batch, L) = (", batch, ", ", L, ") tensor, got ", in.reset.sizes());
    TORCH_CHECK(in.reset.device() == in.x.device(), "ssd: every input must be on x's device ", in.x.device());
  }
  for (const auto* t : {&in.dt, &in.A, &in.B, &in.C})
    TORCH_CHECK(t->device() == in.x.device(), "ssd: every input must be on x's device ", in.x.device());
}

SsdOutputs ssd(const SsdInputs& in) {
  check_ssd_inputs(in);
  auto init = in.initial_state.defined() ? std::optional<at::Tensor>(in.initial_state) : std::nullopt;
  auto reset = in.reset.defined() ? std::optional<at::Tensor>(in.reset) : std::nullopt;
  auto outs = SsdFn::apply(in.x, in.dt, in.A, in.B, in.C, init, reset, in.chunk_size);
  return {outs[0], outs[1]};
}

}  // namespace hgpt::ops
