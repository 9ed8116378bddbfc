// test_selective_scan.cpp — the selective scan implementations against independent oracles: the
// reference vs a scalar loop and vs finite differences, the fused CPU kernel vs the reference
// (outputs, last state, all eight gradients) and vs finite differences, document resets (the
// reference vs each document run alone, the fused kernel vs the reference), and the dispatch rules.
#include "hgpt/ops/selective_scan.h"
#include "src/ops/selective_scan_dispatch.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

namespace hgpt::ops {
namespace {

struct Shape {
  int64_t batch, dim, seqlen, dstate;
};

struct Options {
  bool with_z = true, with_bias = true, softplus = true, with_D = true;
};

std::string describe(const Shape& s, const Options& o) {
  return "B=" + std::to_string(s.batch) + " D=" + std::to_string(s.dim) + " L=" + std::to_string(s.seqlen) +
         " N=" + std::to_string(s.dstate) + " z=" + std::to_string(o.with_z) + " bias=" + std::to_string(o.with_bias) +
         " softplus=" + std::to_string(o.softplus) + " D_skip=" + std::to_string(o.with_D);
}

// Random inputs, never zero. Without softplus delta is kept positive (it is a step size).
ScanInputs random_inputs(const Shape& s, const Options& o, at::ScalarType dtype, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto f64 = at::TensorOptions().dtype(at::kDouble);
  auto randn = [&](at::IntArrayRef size) { return at::randn(size, gen, f64); };
  auto rand = [&](at::IntArrayRef size) { return at::rand(size, gen, f64); };
  ScanInputs in;
  in.u = randn({s.batch, s.dim, s.seqlen}).to(dtype);
  in.delta =
      (o.softplus ? randn({s.batch, s.dim, s.seqlen}) * 0.7 - 0.5 : rand({s.batch, s.dim, s.seqlen}) * 0.5 + 0.05)
          .to(dtype);
  in.A = (-(rand({s.dim, s.dstate}) * 1.5 + 0.2)).to(at::kFloat);
  in.B = randn({s.batch, s.dstate, s.seqlen}).to(dtype);
  in.C = randn({s.batch, s.dstate, s.seqlen}).to(dtype);
  if (o.with_D) in.D_skip = randn({s.dim}).to(at::kFloat);
  if (o.with_z) in.z = randn({s.batch, s.dim, s.seqlen}).to(dtype);
  if (o.with_bias) in.delta_bias = (rand({s.dim}) * 0.5 + 0.1).to(at::kFloat);
  in.delta_softplus = o.softplus;
  if (dtype == at::kDouble) {  // fp64 tests: weights in fp64 too, so the whole op is exact
    for (at::Tensor* t : {&in.A, &in.D_skip, &in.delta_bias}) {
      if (t->defined()) *t = t->to(at::kDouble);
    }
  }
  return in;
}

std::vector<at::Tensor*> fields(ScanInputs& in) {
  return {&in.u, &in.delta, &in.A, &in.B, &in.C, &in.D_skip, &in.z, &in.delta_bias};
}
const char* kFieldNames[] = {"u", "delta", "A", "B", "C", "D", "z", "delta_bias"};

ScanInputs cast_inputs(const ScanInputs& in, at::ScalarType dtype) {
  ScanInputs out = in;
  for (at::Tensor* t : fields(out)) {
    if (t->defined()) *t = t->to(dtype);
  }
  return out;
}

// The semantics of ops::selective_scan (selective_scan.h) written as a plain per-element loop in
// double.
at::Tensor scalar_loop_scan(const ScanInputs& in, at::Tensor* last_state) {
  auto d64 = [](const at::Tensor& t) { return t.defined() ? t.to(at::kDouble).contiguous() : t; };
  auto u = d64(in.u), delta = d64(in.delta), A = d64(in.A), B = d64(in.B), C = d64(in.C);
  auto D = d64(in.D_skip), z = d64(in.z), bias = d64(in.delta_bias);
  const int64_t Bn = u.size(0), Dn = u.size(1), L = u.size(2), N = A.size(1);
  auto out = at::zeros({Bn, Dn, L}, at::kDouble);
  auto last = at::zeros({Bn, Dn, N}, at::kDouble);
  auto ua = u.accessor<double, 3>(), da = delta.accessor<double, 3>(), Ba = B.accessor<double, 3>();
  auto Ca = C.accessor<double, 3>(), oa = out.accessor<double, 3>();
  auto Aa = A.accessor<double, 2>();
  auto la = last.accessor<double, 3>();
  for (int64_t b = 0; b < Bn; ++b) {
    for (int64_t d = 0; d < Dn; ++d) {
      std::vector<double> h(N, 0.0);
      for (int64_t t = 0; t < L; ++t) {
        double dt = da[b][d][t] + (bias.defined() ? bias[d].item<double>() : 0.0);
        if (in.delta_softplus) dt = dt > 20 ? dt : std::log1p(std::exp(dt));
        double y = 0;
        for (int64_t n = 0; n < N; ++n) {
          h[n] = std::exp(dt * Aa[d][n]) * h[n] + dt * Ba[b][n][t] * ua[b][d][t];
          y += Ca[b][n][t] * h[n];
        }
        if (D.defined()) y += D[d].item<double>() * ua[b][d][t];
        if (z.defined()) {
          const double zt = z[b][d][t].item<double>();
          y *= zt / (1 + std::exp(-zt));
        }
        oa[b][d][t] = y;
      }
      for (int64_t n = 0; n < N; ++n) la[b][d][n] = h[n];
    }
  }
  if (last_state) *last_state = last;
  return out;
}

using ScanFn = std::function<ScanOutputs(const ScanInputs&, bool)>;

ScanFn impl_fn(ScanImpl impl) {
  return [impl](const ScanInputs& in, bool last) { return selective_scan(in, last, impl); };
}

// Loss = Σ out·w for a fixed random w; returns the output and the gradients of all inputs.
struct Grads {
  at::Tensor out;
  std::vector<at::Tensor> grads;  // in fields() order; undefined for absent inputs
};

Grads run_with_grads(const ScanFn& fn, ScanInputs in, const at::Tensor& w) {
  std::vector<at::Tensor> leaves;
  for (at::Tensor* t : fields(in)) {
    if (t->defined()) {
      *t = t->detach().clone().requires_grad_(true);
      leaves.push_back(*t);
    }
  }
  auto out = fn(in, false).out;
  auto loss = (out.to(at::kDouble) * w).sum();
  auto g = torch::autograd::grad({loss}, leaves);
  Grads r;
  r.out = out.detach();
  size_t k = 0;
  for (at::Tensor* t : fields(in)) r.grads.push_back(t->defined() ? g[k++] : at::Tensor());
  return r;
}

// Central finite differences of Σ out·w with respect to every element of every input (fp64).
std::vector<at::Tensor> finite_differences(const ScanFn& fn, const ScanInputs& in, const at::Tensor& w,
                                           double eps = 1e-6) {
  std::vector<at::Tensor> result;
  ScanInputs work = in;
  for (at::Tensor* t : fields(work)) {
    if (t->defined()) *t = t->clone().contiguous();
  }
  auto loss = [&]() { return (fn(work, false).out * w).sum().item<double>(); };
  for (at::Tensor* t : fields(work)) {
    if (!t->defined()) {
      result.emplace_back();
      continue;
    }
    auto grad = at::zeros_like(*t);
    double* p = t->data_ptr<double>();
    double* gp = grad.data_ptr<double>();
    for (int64_t i = 0; i < t->numel(); ++i) {
      const double orig = p[i];
      p[i] = orig + eps;
      const double plus = loss();
      p[i] = orig - eps;
      const double minus = loss();
      p[i] = orig;
      gp[i] = (plus - minus) / (2 * eps);
    }
    result.push_back(grad);
  }
  return result;
}

// |a - b| ≤ atol + rtol·|b| elementwise, with atol = atol_scale·max|b| for near-zero entries.
void expect_close(const at::Tensor& actual, const at::Tensor& expected, double rtol, double atol_scale,
                  const std::string& what) {
  ASSERT_TRUE(actual.defined()) << what << ": missing";
  ASSERT_EQ(actual.sizes(), expected.sizes()) << what;
  auto a = actual.to(at::kDouble), e = expected.to(at::kDouble);
  ASSERT_FALSE(at::isnan(a).any().item<bool>()) << what << ": NaN";
  const double atol = atol_scale * std::max(e.abs().max().item<double>(), 1e-30);
  auto excess = (a - e).abs() - (e.abs() * rtol + atol);
  const double worst = excess.max().item<double>();
  EXPECT_LE(worst, 0.0) << what << ": max |diff| = " << (a - e).abs().max().item<double>() << " at index "
                        << excess.argmax().item<int64_t>() << ", max |expected| = " << e.abs().max().item<double>();
}

// ---- (1) the reference vs a scalar loop ----
TEST(SelectiveScanReference, MatchesScalarLoop) {
  for (const Options& o : {Options{}, Options{false, false, false, false}, Options{true, false, true, true}}) {
    const Shape s{2, 3, 9, 4};
    auto in = random_inputs(s, o, at::kDouble, 11);
    at::Tensor expected_last;
    const auto expected = scalar_loop_scan(in, &expected_last);
    const auto got = selective_scan_reference(in, true);
    expect_close(got.out, expected, 1e-12, 1e-12, "out " + describe(s, o));
    expect_close(got.last_state, expected_last, 1e-12, 1e-12, "last_state " + describe(s, o));
  }
}

// ---- (2) the reference's gradients vs finite differences ----
TEST(SelectiveScanReference, GradientsMatchFiniteDifferences) {
  for (const Options& o : {Options{}, Options{false, false, false, true}}) {
    const Shape s{1, 2, 5, 3};
    auto in = random_inputs(s, o, at::kDouble, 12);
    auto w = at::randn({s.batch, s.dim, s.seqlen}, at::kDouble);
    auto fn = [](const ScanInputs& x, bool last) { return selective_scan_reference(x, last); };
    const auto got = run_with_grads(fn, in, w);
    const auto fd = finite_differences(fn, in, w);
    for (size_t i = 0; i < fd.size(); ++i) {
      if (!fd[i].defined()) continue;
      expect_close(got.grads[i], fd[i], 1e-6, 1e-7, std::string("d") + kFieldNames[i] + " " + describe(s, o));
    }
  }
}

// ---- (3) + (4) fused CPU vs the reference: outputs, last state and all eight gradients ----
TEST(SelectiveScanFusedCpu, MatchesReferenceForwardBackward) {
  detail::set_poison_outputs(true);  // unwritten elements become NaN and fail the comparison
  const int64_t chunk = detail::kCpuScanChunk;
  const std::vector<Options> options = {Options{}, Options{false, false, false, false},
                                        Options{true, false, true, true}, Options{false, true, false, true}};
  int case_index = 0;
  for (int64_t L : {int64_t(1), int64_t(7), int64_t(64), chunk + 3, 3 * chunk}) {
    for (int64_t N : {1, 16, 64}) {
      // Every shape with two option sets (rotating through all four), to keep the test quick.
      for (int k = 0; k < 2; ++k) {
        const Options& o = options[(case_index + k) % options.size()];
        const Shape s{2, 3, L, N};
        const std::string what = describe(s, o);
        auto in = random_inputs(s, o, at::kFloat, 100 + case_index);
        auto w = at::randn({s.batch, s.dim, s.seqlen}, at::kDouble);
        // The oracle: the reference on the same values in fp64, so only the fused fp32 rounding counts.
        auto ref_fn = [](const ScanInputs& x, bool last) { return selective_scan_reference(x, last); };
        const auto expected = run_with_grads(ref_fn, cast_inputs(in, at::kDouble), w);
        const auto got = run_with_grads(impl_fn(ScanImpl::FusedCpu), in, w);
        ASSERT_EQ(got.out.scalar_type(), at::kFloat);
        expect_close(got.out, expected.out, 1e-5, 1e-6, "out " + what);
        for (size_t i = 0; i < got.grads.size(); ++i) {
          ASSERT_EQ(got.grads[i].defined(), expected.grads[i].defined()) << kFieldNames[i];
          if (!expected.grads[i].defined()) continue;
          EXPECT_EQ(got.grads[i].scalar_type(), at::kFloat);
          expect_close(got.grads[i], expected.grads[i], 1e-5, 1e-5, std::string("d") + kFieldNames[i] + " " + what);
        }
        const auto last = selective_scan(in, true, ScanImpl::FusedCpu).last_state;
        const auto ref_last = selective_scan_reference(cast_inputs(in, at::kDouble), true).last_state;
        expect_close(last, ref_last, 1e-5, 1e-6, "last_state " + what);
      }
      ++case_index;
    }
  }
  detail::set_poison_outputs(false);
}

TEST(SelectiveScanFusedCpu, LastStateEqualsReferenceInDouble) {
  const Shape s{2, 4, 2 * detail::kCpuScanChunk + 5, 16};
  auto in = random_inputs(s, Options{}, at::kDouble, 7);
  const auto got = selective_scan(in, true, ScanImpl::FusedCpu);
  const auto ref = selective_scan_reference(in, true);
  ASSERT_TRUE(got.last_state.defined());
  EXPECT_EQ(got.last_state.scalar_type(), at::kDouble);
  expect_close(got.last_state, ref.last_state, 1e-12, 1e-12, "last_state");
  expect_close(got.out, ref.out, 1e-12, 1e-12, "out");
  EXPECT_FALSE(got.last_state.requires_grad());
  EXPECT_FALSE(selective_scan(in, false, ScanImpl::FusedCpu).last_state.defined());
}

// ---- (5) fused CPU gradients vs finite differences, across a chunk boundary ----
TEST(SelectiveScanFusedCpu, GradientsMatchFiniteDifferences) {
  for (const Options& o : {Options{}, Options{false, false, false, true}}) {
    const Shape s{1, 2, detail::kCpuScanChunk + 3, 2};
    auto in = random_inputs(s, o, at::kDouble, 21);
    auto w = at::randn({s.batch, s.dim, s.seqlen}, at::kDouble);
    const auto fn = impl_fn(ScanImpl::FusedCpu);
    const auto got = run_with_grads(fn, in, w);
    const auto fd = finite_differences(fn, in, w);
    for (size_t i = 0; i < fd.size(); ++i) {
      if (!fd[i].defined()) continue;
      expect_close(got.grads[i], fd[i], 1e-6, 1e-7, std::string("d") + kFieldNames[i] + " " + describe(s, o));
    }
  }
}

TEST(SelectiveScanFusedCpu, Bf16InputsFollowTheReference) {
  const Shape s{2, 3, 70, 16};
  auto in = random_inputs(s, Options{}, at::kBFloat16, 5);
  auto w = at::randn({s.batch, s.dim, s.seqlen}, at::kDouble);
  auto ref_fn = [](const ScanInputs& x, bool last) { return selective_scan_reference(x, last); };
  const auto expected = run_with_grads(ref_fn, cast_inputs(in, at::kDouble), w);
  const auto got = run_with_grads(impl_fn(ScanImpl::FusedCpu), in, w);
  EXPECT_EQ(got.out.scalar_type(), at::kBFloat16);
  expect_close(got.out, expected.out, 1e-2, 1e-2, "out");  // bf16 rounding of the output
  for (size_t i = 0; i < got.grads.size(); ++i) {
    if (!expected.grads[i].defined()) continue;
    EXPECT_EQ(got.grads[i].scalar_type(),
              in.u.scalar_type() == at::kBFloat16 && (i == 2 || i == 5 || i == 7) ? at::kFloat : at::kBFloat16)
        << kFieldNames[i];
    expect_close(got.grads[i], expected.grads[i], 2e-2, 2e-2, std::string("d") + kFieldNames[i]);
  }
}

// Bitwise the same results at 1 thread and at several, and on a repeat: every task runs in a
// fixed order and the partial sums are added in a fixed order.
TEST(SelectiveScanFusedCpu, DeterministicAtAnyThreadCount) {
  const Shape s{3, 150, 70, 16};  // several tasks per batch row, a channel tail, three chunks
  auto in = random_inputs(s, Options{}, at::kFloat, 9);
  auto w = at::randn({s.batch, s.dim, s.seqlen}, at::kDouble);
  const int threads_before = at::get_num_threads();
  at::set_num_threads(1);
  const auto one = run_with_grads(impl_fn(ScanImpl::FusedCpu), in, w);
  at::set_num_threads(4);
  ASSERT_EQ(at::get_num_threads(), 4);
  // Really on four threads (ATen's parallel_for is serial in code built without OpenMP).
  EXPECT_EQ(detail::scan_cpu_threads_used(/*batch=*/8, /*dim=*/64), 4) << "the fused CPU scan runs on one thread";
  const auto four = run_with_grads(impl_fn(ScanImpl::FusedCpu), in, w);
  const auto again = run_with_grads(impl_fn(ScanImpl::FusedCpu), in, w);
  at::set_num_threads(threads_before);
  EXPECT_TRUE(at::equal(one.out, four.out));
  EXPECT_TRUE(at::equal(four.out, again.out));
  for (size_t i = 0; i < one.grads.size(); ++i) {
    EXPECT_TRUE(at::equal(one.grads[i], four.grads[i])) << kFieldNames[i] << " (1 vs 4 threads)";
    EXPECT_TRUE(at::equal(four.grads[i], again.grads[i])) << kFieldNames[i] << " (repeat)";
  }
}

// (B, L, X) memory seen as (B, X, L), as the Mamba mixer passes its activations (B and C as
// column slices of a wider matrix): the kernel reads them in place and gives the same results,
// bitwise, as for contiguous copies, and matches the reference. Channel counts with full vectors
// and a partial last task.
TEST(SelectiveScanFusedCpu, ChannelsLastViewsMatchContiguousInputs) {
  for (int64_t dim : {16, 80}) {
    const Shape s{2, dim, detail::kCpuScanChunk + 5, 16};
    const auto contiguous = random_inputs(s, Options{}, at::kFloat, 40 + dim);
    ScanInputs views = contiguous;
    for (at::Tensor* t : {&views.u, &views.delta, &views.z}) *t = t->transpose(1, 2).contiguous().transpose(1, 2);
    auto bc =
        at::cat({contiguous.B.transpose(1, 2), contiguous.C.transpose(1, 2), at::zeros({s.batch, s.seqlen, 3})}, 2);
    views.B = bc.narrow(2, 0, s.dstate).transpose(1, 2);
    views.C = bc.narrow(2, s.dstate, s.dstate).transpose(1, 2);
    ASSERT_EQ(views.u.stride(1), 1);
    ASSERT_TRUE(at::equal(views.B, contiguous.B));
    auto w = at::randn({s.batch, s.dim, s.seqlen}, at::kDouble);
    const auto a = run_with_grads(impl_fn(ScanImpl::FusedCpu), views, w);
    const auto b = run_with_grads(impl_fn(ScanImpl::FusedCpu), contiguous, w);
    EXPECT_TRUE(at::equal(a.out, b.out)) << "dim " << dim;
    // run_with_grads clones B and C into plain layouts; the forward reads the column slices too.
    EXPECT_TRUE(at::equal(selective_scan(views, false, ScanImpl::FusedCpu).out, b.out)) << "dim " << dim;
    for (size_t i = 0; i < a.grads.size(); ++i) {
      EXPECT_TRUE(at::equal(a.grads[i], b.grads[i])) << kFieldNames[i] << " dim " << dim;
    }
    auto ref_fn = [](const ScanInputs& x, bool last) { return selective_scan_reference(x, last); };
    const auto expected = run_with_grads(ref_fn, cast_inputs(contiguous, at::kDouble), w);
    expect_close(a.out, expected.out, 1e-5, 1e-6, "out dim " + std::to_string(dim));
    for (size_t i = 0; i < a.grads.size(); ++i) {
      expect_close(a.grads[i], expected.grads[i], 1e-5, 1e-5,
                   std::string("d") + kFieldNames[i] + " dim " + std::to_string(dim));
    }
  }
}

// The kernel compiled for the instruction set ATen runs with (ATEN_CPU_CAPABILITY lowers both).
TEST(SelectiveScanFusedCpu, RunsTheKernelOfAtensCpuCapability) {
  const std::string aten = at::get_cpu_capability();
  if (aten != "DEFAULT" && aten != "AVX2" && aten != "AVX512") GTEST_SKIP() << "no x86 kernels for " << aten;
  EXPECT_EQ(std::string(detail::scan_cpu_capability()), aten);
}

// ---- document resets ----
// Reset flags (batch, L): a document start at t = 0, at random steps, and on both sides of the
// fused kernel's chunk edge.
at::Tensor reset_flags(int64_t batch, int64_t L, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto reset = at::rand({batch, L}, gen, at::TensorOptions().dtype(at::kDouble)) < 0.15;
  reset.select(1, 0).fill_(true);
  for (int64_t t : {detail::kCpuScanChunk - 1, detail::kCpuScanChunk}) {
    if (t < L) reset.select(0, 0).select(0, t).fill_(true);
  }
  return reset;
}

// The independent oracle for resets: each document (a row's steps from one start to the next) run
// alone through the reference scan without resets; the last document also gives the last state.
TEST(SelectiveScanReference, ResetsEqualEachDocumentRunAlone) {
  const Shape s{2, 3, 40, 4};
  auto in = random_inputs(s, Options{}, at::kDouble, 31);
  in.reset = reset_flags(s.batch, s.seqlen, 32);
  const auto got = selective_scan_reference(in, true);
  int documents = 0;
  for (int64_t b = 0; b < s.batch; ++b) {
    std::vector<int64_t> starts;
    for (int64_t t = 0; t < s.seqlen; ++t) {
      if (in.reset[b][t].item<bool>()) starts.push_back(t);
    }
    starts.push_back(s.seqlen);
    for (size_t k = 0; k + 1 < starts.size(); ++k) {
      const int64_t t0 = starts[k], len = starts[k + 1] - t0;
      auto slice = [&](const at::Tensor& t) { return t.defined() ? t.narrow(0, b, 1).narrow(2, t0, len) : t; };
      ScanInputs alone = in;
      alone.reset = at::Tensor();
      for (at::Tensor* t : {&alone.u, &alone.delta, &alone.B, &alone.C, &alone.z}) *t = slice(*t);
      const auto expected = selective_scan_reference(alone, true);
      const std::string what = "row " + std::to_string(b) + " document at " + std::to_string(t0);
      expect_close(slice(got.out), expected.out, 1e-12, 1e-12, "out " + what);
      if (k + 2 == starts.size())
        expect_close(got.last_state.narrow(0, b, 1), expected.last_state, 1e-12, 1e-12, "last_state " + what);
      ++documents;
    }
  }
  EXPECT_GT(documents, 4);  // the flags really split the rows
}

// The fused CPU kernel with resets: outputs, last state and all eight gradients against the
// reference with resets (fp64 on the same values), across chunk edges; and against finite
// differences in fp64.
TEST(SelectiveScanFusedCpu, ResetsMatchReferenceForwardBackward) {
  detail::set_poison_outputs(true);
  for (int64_t L : {int64_t(9), 3 * detail::kCpuScanChunk + 2}) {
    const Shape s{2, 70, L, 16};  // a full task and a partial one
    auto in = random_inputs(s, Options{}, at::kFloat, 33 + L);
    in.reset = reset_flags(s.batch, L, 34 + L);
    auto w = at::randn({s.batch, s.dim, s.seqlen}, at::kDouble);
    auto ref_fn = [](const ScanInputs& x, bool last) { return selective_scan_reference(x, last); };
    const auto expected = run_with_grads(ref_fn, cast_inputs(in, at::kDouble), w);
    const auto got = run_with_grads(impl_fn(ScanImpl::FusedCpu), in, w);
    const std::string what = "L=" + std::to_string(L);
    expect_close(got.out, expected.out, 1e-5, 1e-6, "out " + what);
    for (size_t i = 0; i < got.grads.size(); ++i) {
      expect_close(got.grads[i], expected.grads[i], 1e-5, 1e-5, std::string("d") + kFieldNames[i] + " " + what);
    }
    const auto last = selective_scan(in, true, ScanImpl::FusedCpu).last_state;
    expect_close(last, selective_scan_reference(cast_inputs(in, at::kDouble), true).last_state, 1e-5, 1e-6,
                 "last_state " + what);
    // Without the flags the results differ: the resets are not a no-op.
    ScanInputs crossing = in;
    crossing.reset = at::Tensor();
    EXPECT_GT((selective_scan(crossing, false, ScanImpl::FusedCpu).out - got.out).abs().max().item<double>(), 1e-3);
  }
  detail::set_poison_outputs(false);
  const Shape s{1, 2, detail::kCpuScanChunk + 3, 2};
  auto in = random_inputs(s, Options{}, at::kDouble, 35);
  in.reset = reset_flags(s.batch, s.seqlen, 36);
  auto w = at::randn({s.batch, s.dim, s.seqlen}, at::kDouble);
  const auto fn = impl_fn(ScanImpl::FusedCpu);
  const auto got = run_with_grads(fn, in, w);
  const auto fd = finite_differences(fn, in, w);
  for (size_t i = 0; i < fd.size(); ++i) {
    if (fd[i].defined()) expect_close(got.grads[i], fd[i], 1e-6, 1e-7, std::string("d") + kFieldNames[i] + " (fd)");
  }
}

// ---- dispatch ----
TEST(SelectiveScanDispatch, AutoOnCpuIsTheFusedKernel) {
  auto in = random_inputs(Shape{1, 2, 10, 4}, Options{}, at::kFloat, 3);
  EXPECT_TRUE(at::equal(selective_scan(in).out, selective_scan(in, false, ScanImpl::FusedCpu).out));
  EXPECT_TRUE(at::equal(selective_scan(in, false, ScanImpl::Reference).out, selective_scan_reference(in).out));
}

TEST(SelectiveScanDispatch, CudaOnCpuTensorsIsAClearError) {
  auto in = random_inputs(Shape{1, 2, 10, 4}, Options{}, at::kFloat, 3);
  try {
    selective_scan(in, false, ScanImpl::Cuda);
    FAIL() << "expected an error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("CUDA"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace hgpt::ops
