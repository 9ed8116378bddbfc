// test_ssd.cpp — Mamba-2's chunked scan against the recurrence it computes, token by token in
// float64 (written here from the Mamba-2 paper's definition, not from the chunked algorithm), and
// its gradients against float64 finite differences.
#include "hgpt/ops/ssd.h"
#include "src/ops/ssd_parts.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <functional>
#include <string>
#include <vector>

namespace hgpt::ops {
namespace {

struct Shape {
  int64_t batch, L, heads, headdim, groups, dstate;
};

std::string describe(const Shape& s, int64_t Q) {
  return "B=" + std::to_string(s.batch) + " L=" + std::to_string(s.L) + " H=" + std::to_string(s.heads) +
         " P=" + std::to_string(s.headdim) + " G=" + std::to_string(s.groups) + " N=" + std::to_string(s.dstate) +
         " Q=" + std::to_string(Q);
}

// dt in the range softplus gives at init and after (about 1e-3 .. 2), A = −exp(A_log), A_log in ln[1, 16].
SsdInputs random_inputs(const Shape& s, at::ScalarType dtype, uint64_t seed, bool with_initial_state) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto f64 = at::TensorOptions().dtype(at::kDouble);
  SsdInputs in;
  in.x = at::randn({s.batch, s.L, s.heads, s.headdim}, gen, f64).to(dtype);
  in.dt =
      at::softplus(at::randn({s.batch, s.L, s.heads}, gen, f64) - 1.0).to(dtype == at::kDouble ? dtype : at::kFloat);
  in.A = (-at::exp(at::rand({s.heads}, gen, f64) * std::log(16.0))).to(in.dt.scalar_type());
  in.B = at::randn({s.batch, s.L, s.groups, s.dstate}, gen, f64).to(dtype);
  in.C = at::randn({s.batch, s.L, s.groups, s.dstate}, gen, f64).to(dtype);
  if (with_initial_state)
    in.initial_state = at::randn({s.batch, s.heads, s.headdim, s.dstate}, gen, f64).to(in.dt.scalar_type());
  return in;
}

// The oracle: h_t = exp(dt_t·A)·h_{t−1} + dt_t·x_t ⊗ B_t, y_t = h_t·C_t, one token at a time, float64;
// at a document start (reset) h_{t−1} is taken as 0. Differentiable through ATen's autograd.
SsdOutputs sequential(const SsdInputs& in) {
  const int64_t batch = in.x.size(0), L = in.x.size(1), H = in.x.size(2), P = in.x.size(3);
  const int64_t G = in.B.size(2), N = in.B.size(3);
  const auto x = in.x.to(at::kDouble), dt = in.dt.to(at::kDouble), A = in.A.to(at::kDouble);
  // Each head's group's B and C: head h reads group h / (H / G).
  const auto group_of_head = at::arange(H, at::kLong).div(H / G, "floor");
  const auto B = in.B.to(at::kDouble).index_select(2, group_of_head);  // (batch, L, H, N)
  const auto C = in.C.to(at::kDouble).index_select(2, group_of_head);
  auto h = in.initial_state.defined() ? in.initial_state.to(at::kDouble) : at::zeros({batch, H, P, N}, x.options());
  std::vector<at::Tensor> ys;
  for (int64_t t = 0; t < L; ++t) {
    const auto dt_t = dt.select(1, t);                                 // (batch, H)
    const auto decay = at::exp(dt_t * A).unsqueeze(-1).unsqueeze(-1);  // (batch, H, 1, 1)
    const auto input = (dt_t.unsqueeze(-1) * x.select(1, t)).unsqueeze(-1) * B.select(1, t).unsqueeze(2);
    if (in.reset.defined()) h = h * in.reset.select(1, t).logical_not().to(at::kDouble).view({batch, 1, 1, 1});
    h = decay * h + input;                                                  // (batch, H, P, N)
    ys.push_back(at::matmul(h, C.select(1, t).unsqueeze(-1)).squeeze(-1));  // (batch, H, P)
  }
  return {at::stack(ys, 1), h};
}

double max_rel_error(const at::Tensor& got, const at::Tensor& want) {
  const auto g = got.to(at::kDouble), w = want.to(at::kDouble);
  return ((g - w).abs().max() / w.abs().max().clamp_min(1e-30)).item<double>();
}

// float64 in, so the chunked algorithm and the recurrence differ only by rounding.
TEST(Ssd, MatchesTheSequentialRecurrenceInFloat64) {
  const int64_t Q = 16;
  int case_index = 0;
  for (const int64_t L : {int64_t{1}, Q - 1, Q, Q + 1, 3 * Q + 5}) {
    for (const Shape s :
         {Shape{2, L, 3, 16, 1, 16}, Shape{1, L, 6, 1, 2, 1}, Shape{2, L, 5, 64, 1, 64}, Shape{1, L, 2, 16, 2, 128}}) {
      for (const bool init : {false, true}) {
        auto in = random_inputs(s, at::kDouble, 100 + case_index++, init);
        in.chunk_size = Q;
        const auto got = ssd(in);
        const auto want = sequential(in);
        EXPECT_LT(max_rel_error(got.y, want.y), 1e-12) << describe(s, Q) << " init=" << init;
        EXPECT_LT(max_rel_error(got.final_state, want.final_state), 1e-12) << describe(s, Q) << " init=" << init;
      }
    }
  }
}

// Chunks longer than the blocks the causal products are split into (64 rows), with a partial block.
TEST(Ssd, LongChunksMatchTheRecurrenceInFloat64) {
  for (const int64_t Q : {int64_t{100}, int64_t{256}}) {
    const Shape s{1, 2 * Q + 37, 3, 8, 1, 16};
    auto in = random_inputs(s, at::kDouble, 41 + Q, true);
    in.chunk_size = Q;
    const auto got = ssd(in);
    const auto want = sequential(in);
    EXPECT_LT(max_rel_error(got.y, want.y), 1e-12) << describe(s, Q);
    EXPECT_LT(max_rel_error(got.final_state, want.final_state), 1e-12) << describe(s, Q);
  }
  // And the gradients there, against the chunk of 16 the finite-difference test checks.
  const Shape s{1, 150, 2, 4, 1, 8};
  auto in = random_inputs(s, at::kDouble, 43, false);
  const auto dy = at::randn({s.batch, s.L, s.heads, s.headdim}, at::kDouble);
  auto grads_at = [&](int64_t Q) {
    SsdInputs v = in;
    v.chunk_size = Q;
    for (auto* t : {&v.x, &v.dt, &v.A, &v.B, &v.C}) *t = t->detach().clone().requires_grad_(true);
    return torch::autograd::grad({(ssd(v).y * dy).sum()}, {v.x, v.dt, v.A, v.B, v.C});
  };
  const auto small = grads_at(16), large = grads_at(128);
  for (size_t i = 0; i < small.size(); ++i) EXPECT_LT(max_rel_error(large[i], small[i]), 1e-11) << "input " << i;
}

// fp32 compute follows the float64 recurrence to fp32 rounding, at the default chunk size too.
TEST(Ssd, Fp32FollowsTheRecurrence) {
  for (const int64_t Q : {int64_t{16}, int64_t{64}, int64_t{256}}) {
    const Shape s{2, 300, 6, 16, 2, 32};
    auto in = random_inputs(s, at::kFloat, 7, true);
    in.chunk_size = Q;
    const auto got = ssd(in);
    const auto want = sequential(in);
    EXPECT_LT(max_rel_error(got.y, want.y), 2e-5) << describe(s, Q);
    EXPECT_LT(max_rel_error(got.final_state, want.final_state), 2e-5) << describe(s, Q);
  }
}

TEST(Ssd, ChunkSizeChangesOnlyRounding) {
  const Shape s{2, 100, 4, 8, 1, 16};
  auto in = random_inputs(s, at::kFloat, 11, false);
  in.chunk_size = 7;
  const auto a = ssd(in);
  in.chunk_size = 32;
  const auto b = ssd(in);
  EXPECT_LT(max_rel_error(a.y, b.y), 1e-5);
  EXPECT_LT(max_rel_error(a.final_state, b.final_state), 1e-5);
}

// Steps far outside the usual range: a huge dt·A decays to exactly zero, a tiny one to one; nothing
// overflows (no difference of large cumulative sums), and the result still follows the recurrence.
TEST(Ssd, ExtremeStepsStayFinite) {
  const Shape s{1, 70, 4, 8, 1, 16};
  auto in = random_inputs(s, at::kFloat, 13, true);
  in.chunk_size = 32;
  in.dt = at::where(at::rand(in.dt.sizes()) < 0.5, at::full_like(in.dt, 1e3), at::full_like(in.dt, 1e-6));
  in.A = at::tensor({-1e-4f, -1.0f, -16.0f, -1e3f});
  const auto got = ssd(in);
  EXPECT_TRUE(at::isfinite(got.y).all().item<bool>());
  EXPECT_TRUE(at::isfinite(got.final_state).all().item<bool>());
  const auto want = sequential(in);
  EXPECT_LT(max_rel_error(got.y, want.y), 1e-4);
  EXPECT_LT(max_rel_error(got.final_state, want.final_state), 1e-4);
}

// Gradients of Σ y·Ry + Σ final·Rf with respect to every input, against central differences of the
// float64 op at a few entries of each.
TEST(Ssd, GradientsMatchFiniteDifferences) {
  for (const Shape s : {Shape{2, 11, 4, 3, 2, 5}, Shape{1, 9, 3, 2, 1, 4}}) {
    auto in = random_inputs(s, at::kDouble, 17, true);
    in.chunk_size = 4;
    const auto Ry = at::randn({s.batch, s.L, s.heads, s.headdim}, at::kDouble);
    const auto Rf = at::randn({s.batch, s.heads, s.headdim, s.dstate}, at::kDouble);
    std::vector<at::Tensor*> inputs{&in.x, &in.dt, &in.A, &in.B, &in.C, &in.initial_state};
    const char* names[] = {"x", "dt", "A", "B", "C", "initial_state"};
    auto loss = [&](const SsdInputs& v) {
      const auto out = ssd(v);
      return (out.y * Ry).sum() + (out.final_state * Rf).sum();
    };
    for (auto* t : inputs) *t = t->detach().requires_grad_(true);
    const auto grads = torch::autograd::grad({loss(in)}, {in.x, in.dt, in.A, in.B, in.C, in.initial_state});
    at::NoGradGuard no_grad;
    for (size_t i = 0; i < inputs.size(); ++i) {
      const auto flat = inputs[i]->view(-1);
      for (const int64_t j : {int64_t{0}, flat.numel() / 2, flat.numel() - 1}) {
        const double h = 1e-6, saved = flat[j].item<double>();
        flat[j].fill_(saved + h);
        const double up = loss(in).item<double>();
        flat[j].fill_(saved - h);
        const double down = loss(in).item<double>();
        flat[j].fill_(saved);
        const double fd = (up - down) / (2 * h), analytic = grads[i].reshape(-1)[j].item<double>();
        EXPECT_NEAR(analytic, fd, 1e-6 * std::max(1.0, std::abs(fd))) << names[i] << "[" << j << "] " << describe(s, 4);
      }
    }
  }
}

// Document starts (batch, L): at t = 0 and random steps in row 0, on both sides of each chunk edge
// in the last row.
at::Tensor reset_flags(int64_t batch, int64_t L, int64_t Q, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto reset = at::rand({batch, L}, gen, at::TensorOptions().dtype(at::kDouble)) < 0.1;
  reset.select(1, 0).fill_(true);
  for (int64_t edge = Q; edge < L; edge += Q) {
    for (int64_t t : {edge - 1, edge}) reset.select(0, batch - 1).select(0, t).fill_(true);
  }
  return reset;
}

// With resets the chunked scan follows the recurrence that restarts at each document start:
// outputs and final state in float64, and every gradient against the oracle's own (autograd through
// the token-by-token recurrence), with an initial state that only the first document sees.
TEST(Ssd, DocumentResetsFollowTheRestartingRecurrence) {
  for (const int64_t Q : {int64_t{8}, int64_t{100}}) {
    const Shape s{2, 2 * Q + 13, 4, 8, 2, 16};
    auto in = random_inputs(s, at::kDouble, 51 + Q, true);
    in.chunk_size = Q;
    in.reset = reset_flags(s.batch, s.L, Q, 52 + Q);
    in.reset.select(0, 0).select(0, 0).fill_(false);  // row 0 starts with the initial state's document
    const auto Ry = at::randn({s.batch, s.L, s.heads, s.headdim}, at::kDouble);
    const auto Rf = at::randn({s.batch, s.heads, s.headdim, s.dstate}, at::kDouble);
    auto grads_of = [&](const std::function<SsdOutputs(const SsdInputs&)>& fn, SsdOutputs& out) {
      SsdInputs v = in;
      for (auto* t : {&v.x, &v.dt, &v.A, &v.B, &v.C, &v.initial_state}) *t = t->detach().clone().requires_grad_(true);
      out = fn(v);
      return torch::autograd::grad({(out.y * Ry).sum() + (out.final_state * Rf).sum()},
                                   {v.x, v.dt, v.A, v.B, v.C, v.initial_state});
    };
    SsdOutputs got, want;
    const auto g = grads_of([](const SsdInputs& v) { return ssd(v); }, got);
    const auto w = grads_of([](const SsdInputs& v) { return sequential(v); }, want);
    EXPECT_LT(max_rel_error(got.y, want.y), 1e-12) << describe(s, Q);
    EXPECT_LT(max_rel_error(got.final_state, want.final_state), 1e-12) << describe(s, Q);
    const char* names[] = {"x", "dt", "A", "B", "C", "initial_state"};
    for (size_t i = 0; i < g.size(); ++i)
      EXPECT_LT(max_rel_error(g[i], w[i]), 1e-11) << names[i] << " " << describe(s, Q);
    // The resets matter: without them the outputs differ.
    SsdInputs crossing = in;
    crossing.reset = at::Tensor();
    EXPECT_GT(max_rel_error(ssd(crossing).y, got.y), 1e-3);
  }
}

// The independent check of the restart itself: a packed row with resets equals each document run
// alone, in fp32 at the default chunk size.
TEST(Ssd, PackedRowWithResetsEqualsEachDocumentAlone) {
  const Shape s{1, 600, 4, 16, 1, 32};
  auto in = random_inputs(s, at::kFloat, 61, false);
  in.A = in.A * 1e-3;  // slow decays: what leaks across a start would still be there hundreds of steps on
  in.reset = at::zeros({1, s.L}, at::kBool);
  const std::vector<int64_t> starts{0, 37, 255, 256, 400, s.L};
  for (size_t k = 0; k + 1 < starts.size(); ++k) in.reset[0][starts[k]] = true;
  const auto packed = ssd(in);
  for (size_t k = 0; k + 1 < starts.size(); ++k) {
    const int64_t t0 = starts[k], len = starts[k + 1] - t0;
    SsdInputs alone = in;
    alone.reset = at::Tensor();
    for (auto* t : {&alone.x, &alone.dt, &alone.B, &alone.C}) *t = t->narrow(1, t0, len);
    const auto want = ssd(alone);
    EXPECT_LT(max_rel_error(packed.y.narrow(1, t0, len), want.y), 2e-5) << "document at " << t0;
    if (k + 2 == starts.size()) EXPECT_LT(max_rel_error(packed.final_state, want.final_state), 2e-5);
  }
}

// Same inputs, same bits at one thread and at four.
TEST(Ssd, DeterministicAtAnyThreadCount) {
  const Shape s{3, 200, 6, 16, 2, 32};
  auto in = random_inputs(s, at::kFloat, 19, true);
  in.chunk_size = 64;
  const auto dy = at::randn({s.batch, s.L, s.heads, s.headdim});
  auto run = [&] {
    SsdInputs v = in;
    for (auto* t : {&v.x, &v.dt, &v.A, &v.B, &v.C, &v.initial_state}) *t = t->detach().clone().requires_grad_(true);
    const auto out = ssd(v);
    const auto g = torch::autograd::grad({(out.y * dy).sum() + out.final_state.sum()},
                                         {v.x, v.dt, v.A, v.B, v.C, v.initial_state});
    std::vector<at::Tensor> all{out.y, out.final_state};
    all.insert(all.end(), g.begin(), g.end());
    return all;
  };
  const int before = at::get_num_threads();
  at::set_num_threads(1);
  const auto one = run();
  at::set_num_threads(4);
  const auto four = run();
  at::set_num_threads(before);
  for (size_t i = 0; i < one.size(); ++i) EXPECT_TRUE(at::equal(one[i], four[i])) << "output " << i;
}

// The fused CPU mask against its ATen-op form (the one other devices run), forward and backward,
// including a tail chunk length that is not a multiple of the vector width.
TEST(SsdMask, FusedCpuLoopsMatchTheAtenOps) {
  for (const int64_t Q : {int64_t{1}, int64_t{13}, int64_t{64}}) {
    for (const auto dtype : {at::kFloat, at::kDouble}) {
      auto gen = at::make_generator<at::CPUGeneratorImpl>(29 + Q);
      const auto opts = at::TensorOptions().dtype(dtype);
      const int64_t batch = 2, chunks = 3, groups = 2, heads = 6;
      const auto a = -at::rand({batch, chunks, heads, Q}, gen, opts) * 2.0;
      const auto CB = at::randn({batch, chunks, groups, Q, Q}, gen, opts);
      const auto dM = at::randn({batch, chunks, heads, Q, Q}, gen, opts);
      const auto fused = detail::masked_decay(a, CB);
      const auto aten = detail::masked_decay(a, CB, detail::MaskImpl::Aten);
      const double tol = dtype == at::kFloat ? 1e-5 : 1e-12;
      EXPECT_TRUE(at::allclose(fused.M, aten.M, tol, tol)) << "Q=" << Q;
      EXPECT_TRUE(at::allclose(fused.w, aten.w, tol, tol)) << "Q=" << Q;
      EXPECT_TRUE(at::allclose(fused.acum_exp, aten.acum_exp, tol, tol)) << "Q=" << Q;
      EXPECT_TRUE(at::allclose(fused.chunk_decay, aten.chunk_decay, tol, tol)) << "Q=" << Q;
      at::Tensor dCB_f, da_f, dCB_a, da_a;
      detail::masked_decay_backward(a, CB, dM, dCB_f, da_f);
      detail::masked_decay_backward(a, CB, dM, dCB_a, da_a, detail::MaskImpl::Aten);
      EXPECT_TRUE(at::allclose(dCB_f, dCB_a, tol, tol)) << "Q=" << Q;
      EXPECT_TRUE(at::allclose(da_f, da_a, 10 * tol, 10 * tol)) << "Q=" << Q << " " << (da_f - da_a).abs().max();
    }
  }
}

TEST(Ssd, BadShapesAreClearErrors) {
  const Shape s{1, 8, 4, 2, 1, 3};
  auto in = random_inputs(s, at::kFloat, 23, false);
  auto bad = in;
  bad.B = at::randn({1, 8, 3, 3});  // 4 heads do not split into 3 groups
  EXPECT_THROW(ssd(bad), c10::Error);
  bad = in;
  bad.dt = bad.dt.to(at::kHalf);
  EXPECT_THROW(ssd(bad), c10::Error);
  bad = in;
  bad.initial_state = at::zeros({1, 4, 2, 4});
  EXPECT_THROW(ssd(bad), c10::Error);
}

}  // namespace
}  // namespace hgpt::ops
