// test_selective_scan_cuda.cpp — the fused CUDA selective scan against the reference (fp64 on the
// same values): outputs, last state and all eight gradients, fp32 and bf16, ragged lengths, with
// outputs NaN-poisoned so unwritten elements fail. Skips when no CUDA kernel or device is present.
#include "hgpt/ops/selective_scan.h"
#include "src/ops/selective_scan_dispatch.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <string>
#include <vector>

namespace hgpt::ops {
namespace {

struct Options {
  bool with_z = true, with_bias = true, softplus = true, with_D = true;
};

ScanInputs random_inputs(int64_t Bn, int64_t Dn, int64_t L, int64_t N, const Options& o,
                         at::ScalarType dtype, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto f = at::TensorOptions().dtype(at::kFloat);
  const at::Device cuda(at::kCUDA, 0);
  ScanInputs in;
  in.u = at::randn({Bn, Dn, L}, gen, f).to(cuda, dtype);
  in.delta = (o.softplus ? at::randn({Bn, Dn, L}, gen, f) * 0.7 - 0.5 : at::rand({Bn, Dn, L}, gen, f) * 0.5 + 0.05)
                 .to(cuda, dtype);
  in.A = (-(at::rand({Dn, N}, gen, f) * 1.5 + 0.2)).to(cuda);
  in.B = at::randn({Bn, N, L}, gen, f).to(cuda, dtype);
  in.C = at::randn({Bn, N, L}, gen, f).to(cuda, dtype);
  if (o.with_D) in.D_skip = at::randn({Dn}, gen, f).to(cuda);
  if (o.with_z) in.z = at::randn({Bn, Dn, L}, gen, f).to(cuda, dtype);
  if (o.with_bias) in.delta_bias = (at::rand({Dn}, gen, f) * 0.5 + 0.1).to(cuda);
  in.delta_softplus = o.softplus;
  return in;
}

std::vector<at::Tensor*> fields(ScanInputs& in) {
  return {&in.u, &in.delta, &in.A, &in.B, &in.C, &in.D_skip, &in.z, &in.delta_bias};
}
const char* kFieldNames[] = {"u", "delta", "A", "B", "C", "D", "z", "delta_bias"};

struct Run {
  at::Tensor out, last_state;
  std::vector<at::Tensor> grads;
};

Run run(ScanInputs in, ScanImpl impl, const at::Tensor& w) {
  std::vector<at::Tensor> leaves;
  for (at::Tensor* t : fields(in)) {
    if (t->defined()) {
      *t = t->detach().clone().requires_grad_(true);
      leaves.push_back(*t);
    }
  }
  auto res = selective_scan(in, true, impl);
  auto loss = (res.out.to(at::kDouble) * w).sum();
  auto g = torch::autograd::grad({loss}, leaves);
  Run r{res.out.detach(), res.last_state, {}};
  size_t k = 0;
  for (at::Tensor* t : fields(in)) r.grads.push_back(t->defined() ? g[k++] : at::Tensor());
  return r;
}

void expect_close(const at::Tensor& actual, const at::Tensor& expected, double rtol, double atol,
                  const std::string& what) {
  ASSERT_TRUE(actual.defined()) << what;
  ASSERT_EQ(actual.sizes(), expected.sizes()) << what;
  auto a = actual.to(at::kCPU, at::kDouble), e = expected.to(at::kCPU, at::kDouble);
  ASSERT_FALSE(at::isnan(a).any().item<bool>()) << what << ": NaN (unwritten element?)";
  auto excess = (a - e).abs() - (e.abs() * rtol + atol);
  EXPECT_LE(excess.max().item<double>(), 0.0)
      << what << ": max |diff| = " << (a - e).abs().max().item<double>()
      << ", max |expected| = " << e.abs().max().item<double>();
}

void compare_on_shapes(at::ScalarType dtype, double rtol, double atol) {
  if (!scan_cuda_available()) GTEST_SKIP() << "no CUDA device or CUDA kernel not built: test skipped";
  detail::set_poison_outputs(true);
  const int64_t chunk = detail::kCudaScanChunk;
  const std::vector<Options> options = {Options{}, Options{false, false, false, false},
                                        Options{true, false, true, true}, Options{false, true, false, true}};
  int index = 0;
  for (int64_t L : {int64_t(1), int64_t(7), int64_t(64), chunk + 3, 3 * chunk}) {
    for (int64_t N : {1, 16, 64}) {
      for (int k = 0; k < 2; ++k) {
        const Options& o = options[(index + k) % options.size()];
        const std::string what = "L=" + std::to_string(L) + " N=" + std::to_string(N) + " opts#" +
                                 std::to_string((index + k) % options.size());
        auto in = random_inputs(2, 5, L, N, o, dtype, 1000 + index);
        auto w = at::randn({2, 5, L}, at::TensorOptions().dtype(at::kDouble)).to(in.u.device());
        ScanInputs ref_in = in;  // the oracle: the reference in fp64 on the same values
        for (at::Tensor* t : fields(ref_in)) {
          if (t->defined()) *t = t->to(at::kDouble);
        }
        const auto expected = run(ref_in, ScanImpl::Reference, w);
        const auto got = run(in, ScanImpl::Cuda, w);
        EXPECT_EQ(got.out.scalar_type(), dtype);
        expect_close(got.out, expected.out, rtol, atol, "out " + what);
        expect_close(got.last_state, expected.last_state, rtol, atol, "last_state " + what);
        for (size_t i = 0; i < got.grads.size(); ++i) {
          ASSERT_EQ(got.grads[i].defined(), expected.grads[i].defined()) << kFieldNames[i];
          if (!expected.grads[i].defined()) continue;
          expect_close(got.grads[i], expected.grads[i], rtol, atol, std::string("d") + kFieldNames[i] + " " + what);
        }
      }
      ++index;
    }
  }
  detail::set_poison_outputs(false);
}

TEST(SelectiveScanCuda, Fp32MatchesReference) { compare_on_shapes(at::kFloat, 6e-4, 2e-3); }

TEST(SelectiveScanCuda, Bf16MatchesReference) { compare_on_shapes(at::kBFloat16, 3e-2, 5e-2); }

TEST(SelectiveScanCuda, AutoPicksTheKernelForCudaTensors) {
  if (!scan_cuda_available()) GTEST_SKIP() << "no CUDA device or CUDA kernel not built: test skipped";
  auto in = random_inputs(1, 3, 100, 16, Options{}, at::kFloat, 5);
  EXPECT_TRUE(at::equal(selective_scan(in).out, selective_scan(in, false, ScanImpl::Cuda).out));
}

TEST(SelectiveScanCuda, DStateAbove64IsAClearError) {
  if (!scan_cuda_available()) GTEST_SKIP() << "no CUDA device or CUDA kernel not built: test skipped";
  auto in = random_inputs(1, 2, 10, 65, Options{}, at::kFloat, 6);
  try {
    selective_scan(in, false, ScanImpl::Cuda);
    FAIL() << "expected an error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("d_state"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace hgpt::ops
