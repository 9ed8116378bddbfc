// test_muon.cpp — Newton–Schulz against an SVD reference, and one Muon step against a hand-written
// composition of its formulas.
#include "hgpt/optim/muon.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace hgpt::optim {
namespace {

at::Tensor randn(at::IntArrayRef sizes, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randn(sizes, gen, at::TensorOptions().dtype(at::kFloat));
}

// The quintic φ(x) = a·x + b·x³ + c·x⁵ applied `steps` times to a scalar.
double phi_iterated(double x, int steps) {
  const double a = 3.4445, b = -4.7750, c = 2.0315;
  for (int i = 0; i < steps; ++i) x = a * x + b * x * x * x + c * x * x * x * x * x;
  return x;
}

// Reference: NS acts on each singular value independently, so in exact arithmetic
// NS(G) = U·φ⁵(S / (‖G‖_F + 1e-7))·Vᵀ. Computed in float64 from an SVD.
at::Tensor ns_reference(const at::Tensor& G, int steps) {
  const at::Tensor Gd = G.to(at::kDouble);
  auto [U, S, Vh] = at::linalg_svd(Gd, /*full_matrices=*/false);
  const double fro = Gd.norm().item<double>() + 1e-7;
  std::vector<double> mapped;
  for (int64_t i = 0; i < S.size(0); ++i) mapped.push_back(phi_iterated(S[i].item<double>() / fro, steps));
  return at::mm(U * at::tensor(mapped, at::kDouble).unsqueeze(0), Vh);
}

void check_ns(int64_t rows, int64_t cols, uint64_t seed) {
  const at::Tensor G = randn({rows, cols}, seed);
  const at::Tensor X = zeropower_via_newton_schulz5(G, 5, at::kFloat);
  ASSERT_EQ(X.sizes(), G.sizes());
  ASSERT_EQ(X.scalar_type(), at::kFloat);

  // 1. The whole matrix matches the SVD reference (fp32 iteration vs float64).
  const at::Tensor ref = ns_reference(G, 5);
  EXPECT_TRUE(at::allclose(X.to(at::kDouble), ref, /*rtol=*/0, /*atol=*/2e-4))
      << "max diff " << (X.to(at::kDouble) - ref).abs().max().item<double>();

  // 2. Its singular values lie in the band the iteration maps this matrix's normalised σ into:
  // the min/max of φ⁵ over [σ_min/‖G‖_F, 1] (a fine grid). For a Gaussian 64×32 σ_min/‖G‖_F is
  // about 0.05 and the band is about [0.68, 1.13] — inside nanochat's quoted ~[0.5, 1.5].
  const at::Tensor Gd = G.to(at::kDouble);
  const double lo_in = at::linalg_svdvals(Gd).min().item<double>() / Gd.norm().item<double>();
  double band_lo = 1e9, band_hi = -1e9;
  for (int i = 0; i <= 100000; ++i) {
    const double y = phi_iterated(lo_in + (1.0 - lo_in) * i / 100000.0, 5);
    band_lo = std::min(band_lo, y);
    band_hi = std::max(band_hi, y);
  }
  EXPECT_GT(band_lo, 0.5);
  EXPECT_LT(band_hi, 1.5);
  const at::Tensor sv = at::linalg_svdvals(X.to(at::kDouble));
  EXPECT_GE(sv.min().item<double>(), band_lo - 1e-3);
  EXPECT_LE(sv.max().item<double>(), band_hi + 1e-3);
  // Far from G's own spread: G's σ range over a factor ~5, NS's within a factor < 1.7.
  EXPECT_LT(sv.max().item<double>() / sv.min().item<double>(), 1.7);
}

TEST(NewtonSchulz, TallMatrixMatchesSvdReference) { check_ns(64, 32, 1); }
TEST(NewtonSchulz, WideMatrixMatchesSvdReference) { check_ns(32, 64, 2); }

TEST(NewtonSchulz, TransposeCommutes) {
  const at::Tensor G = randn({48, 16}, 3);
  const at::Tensor a = zeropower_via_newton_schulz5(G, 5, at::kFloat);
  const at::Tensor b = zeropower_via_newton_schulz5(G.t().contiguous(), 5, at::kFloat);
  EXPECT_TRUE(at::allclose(a, b.t(), 0, 1e-5));
}

// On CUDA the iteration runs in bf16 (as nanochat): same result as fp32 within bf16 precision.
TEST(NewtonSchulz, CudaBf16AgreesWithCpuFp32) {
  if (!at::hasCUDA()) GTEST_SKIP() << "CUDA not available";
  const at::Tensor G = randn({64, 32}, 1);
  ASSERT_EQ(newton_schulz_dtype(at::kCUDA), at::kBFloat16);
  const at::Tensor X = zeropower_via_newton_schulz5(G.to(at::kCUDA), 5, at::kBFloat16);
  EXPECT_EQ(X.scalar_type(), at::kBFloat16);
  const at::Tensor Xc = X.to(at::kCPU, at::kFloat);
  EXPECT_TRUE(at::allclose(Xc, zeropower_via_newton_schulz5(G, 5, at::kFloat), 0, 3e-2));
  const at::Tensor sv = at::linalg_svdvals(Xc.to(at::kDouble));
  EXPECT_GT(sv.min().item<double>(), 0.5);
  EXPECT_LT(sv.max().item<double>(), 1.5);
}

// In bf16 on the CPU (Muon's choice on CPUs with bf16 instructions; emulated, but still correct,
// elsewhere): the fp32 result within bf16 precision, singular values in the same band.
TEST(NewtonSchulz, CpuBf16AgreesWithFp32) {
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{64, 32}, {32, 64}, {256, 1024}}) {
    const at::Tensor G = randn({rows, cols}, 7);
    const at::Tensor X = zeropower_via_newton_schulz5(G, 5, at::kBFloat16);
    EXPECT_EQ(X.scalar_type(), at::kBFloat16);
    const at::Tensor Xf = X.to(at::kFloat), ref = zeropower_via_newton_schulz5(G, 5, at::kFloat);
    EXPECT_TRUE(at::allclose(Xf, ref, 0, 3e-2))
        << rows << "x" << cols << ": max diff " << (Xf - ref).abs().max().item<double>();
    const at::Tensor sv = at::linalg_svdvals(Xf.to(at::kDouble));
    EXPECT_GT(sv.min().item<double>(), 0.5);
    EXPECT_LT(sv.max().item<double>(), 1.5);
  }
}

TEST(NewtonSchulz, RejectsNon2D) { EXPECT_ANY_THROW(zeropower_via_newton_schulz5(randn({4, 4, 4}, 4), 5, at::kFloat)); }

// Newton–Schulz in the dtype Muon picks for CPU tensors on this machine, back in fp32.
at::Tensor ns_as_muon_runs_it(const at::Tensor& u) {
  return zeropower_via_newton_schulz5(u, 5, newton_schulz_dtype(at::kCPU)).to(at::kFloat);
}

at::Tensor make_param(at::IntArrayRef sizes, uint64_t seed) { return randn(sizes, seed).requires_grad_(true); }

// Two steps (momentum changed in between, lr multiplier != 1) on a tall and a wide matrix,
// against the formulas written out with plain arithmetic.
TEST(Muon, TwoStepsMatchHandComposition) {
  const double lr = 0.05;
  at::Tensor tall = make_param({6, 3}, 10), wide = make_param({3, 5}, 11);
  Muon opt({{"tall", tall}, {"wide", wide}}, lr, 0.85, /*nesterov=*/true, 5);

  at::Tensor ref_tall = tall.detach().clone(), ref_wide = wide.detach().clone();
  at::Tensor buf_tall = at::zeros_like(ref_tall), buf_wide = at::zeros_like(ref_wide);
  const double scale_tall = std::sqrt(6.0 / 3.0), scale_wide = 1.0;

  const double moms[2] = {0.85, 0.9}, mults[2] = {1.0, 0.5};
  for (int s = 0; s < 2; ++s) {
    const at::Tensor g_tall = randn({6, 3}, 100 + s), g_wide = randn({3, 5}, 200 + s);
    tall.mutable_grad() = g_tall.clone();
    wide.mutable_grad() = g_wide.clone();
    opt.set_momentum(moms[s]);
    opt.set_lr_mult(mults[s]);
    opt.step();
    // The optimizer leaves the gradient untouched.
    EXPECT_TRUE(at::equal(tall.grad(), g_tall));

    const double m = moms[s];
    // buf = m·buf + (1 − m)·g and u = (1 − m)·g + m·buf, written as the lerps Muon uses: Newton–
    // Schulz may run in bf16, where an fp32 rounding difference in u can flip a bf16 rounding.
    buf_tall = buf_tall.lerp(g_tall, 1 - m);
    buf_wide = buf_wide.lerp(g_wide, 1 - m);
    const at::Tensor u_tall = g_tall.lerp(buf_tall, m);
    const at::Tensor u_wide = g_wide.lerp(buf_wide, m);
    ref_tall = ref_tall - lr * mults[s] * scale_tall * ns_as_muon_runs_it(u_tall);
    ref_wide = ref_wide - lr * mults[s] * scale_wide * ns_as_muon_runs_it(u_wide);
    EXPECT_TRUE(at::allclose(tall.detach(), ref_tall, 0, 1e-6)) << "step " << s;
    EXPECT_TRUE(at::allclose(wide.detach(), ref_wide, 0, 1e-6)) << "step " << s;
  }
  EXPECT_EQ(opt.step_count(), 2);
  // The update really moved the weights (not a no-op that trivially matches).
  EXPECT_FALSE(at::allclose(tall.detach(), randn({6, 3}, 10), 0, 1e-3));
}

TEST(Muon, WithoutNesterovStepsAlongTheBuffer) {
  at::Tensor p = make_param({4, 4}, 20);
  const at::Tensor p0 = p.detach().clone();
  Muon opt({{"p", p}}, 0.1, 0.9, /*nesterov=*/false, 5);
  const at::Tensor g = randn({4, 4}, 21);
  p.mutable_grad() = g;
  opt.step();
  // buf = 0.1·g; NS is invariant to a positive scale (up to the 1e-7 in the norm).
  const at::Tensor expected = p0 - 0.1 * ns_as_muon_runs_it(0.1 * g);
  EXPECT_TRUE(at::allclose(p.detach(), expected, 0, 1e-6));
}

TEST(Muon, CudaStepKeepsFp32WeightsAndAgreesWithCpu) {
  if (!at::hasCUDA()) GTEST_SKIP() << "CUDA not available";
  at::Tensor cpu = make_param({16, 8}, 40);
  at::Tensor gpu = cpu.detach().to(at::kCUDA).requires_grad_(true);
  Muon opt_cpu({{"w", cpu}}, 0.02), opt_gpu({{"w", gpu}}, 0.02);
  for (int s = 0; s < 3; ++s) {
    const at::Tensor g = randn({16, 8}, 41 + s);
    cpu.mutable_grad() = g;
    gpu.mutable_grad() = g.to(at::kCUDA);
    opt_cpu.step();
    opt_gpu.step();
  }
  EXPECT_EQ(gpu.scalar_type(), at::kFloat);
  // Three steps of size 0.02·sqrt(2) with bf16 NS: agree to a few percent of one step.
  EXPECT_TRUE(at::allclose(gpu.detach().cpu(), cpu.detach(), 0, 3e-3));
}

TEST(Muon, RejectsNonMatrixParams) {
  at::Tensor v = make_param({8}, 30);
  EXPECT_ANY_THROW(Muon({{"v", v}}));
}

}  // namespace
}  // namespace hgpt::optim
