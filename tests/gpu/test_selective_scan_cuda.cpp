// test_selective_scan_cuda.cpp — the fused CUDA selective scan against the reference (fp64 on the
// same values): outputs, last state and all eight gradients, fp32, bf16 and fp16, ragged lengths,
// with outputs NaN-poisoned so unwritten elements fail; mixed dtypes, non-contiguous inputs and
// extreme values; the production shape on sampled channels, run twice for determinism; and the
// small odd shapes scripts/device_check.sh runs under compute-sanitizer. Skips when no CUDA
// kernel or device is present.
#include "hgpt/ops/selective_scan.h"
#include "src/ops/selective_scan_dispatch.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

namespace hgpt::ops {
namespace {

struct Options {
  bool with_z = true, with_bias = true, softplus = true, with_D = true;
};

ScanInputs random_inputs(int64_t Bn, int64_t Dn, int64_t L, int64_t N, const Options& o, at::ScalarType dtype,
                         uint64_t seed) {
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

struct ScanRun {
  at::Tensor out, last_state;
  std::vector<at::Tensor> grads;
};

ScanRun run(ScanInputs in, ScanImpl impl, const at::Tensor& w) {
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
  ScanRun r{res.out.detach(), res.last_state, {}};
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
  EXPECT_LE(excess.max().item<double>(), 0.0) << what << ": max |diff| = " << (a - e).abs().max().item<double>()
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

TEST(SelectiveScanCuda, Fp16MatchesReference) { compare_on_shapes(at::kHalf, 5e-3, 1e-2); }

// Document starts (reset flags) at t = 0, at random steps and on both sides of the kernel's chunk
// edges: outputs, last state and every gradient against the reference with the same flags (whose
// own oracle, each document scanned alone, is the CPU test SelectiveScanReference.Resets*).
TEST(SelectiveScanCuda, ResetsMatchReference) {
  if (!scan_cuda_available()) GTEST_SKIP() << "no CUDA device or CUDA kernel not built: test skipped";
  detail::set_poison_outputs(true);
  const int64_t chunk = detail::kCudaScanChunk;
  for (int64_t L : {int64_t(9), int64_t(200), 2 * chunk + 5}) {
    auto in = random_inputs(2, 5, L, 16, Options{}, at::kFloat, 3000 + L);
    auto flags = at::rand({2, L}) < 0.05;
    flags.select(1, 0).fill_(true);
    for (int64_t edge = chunk; edge < L; edge += chunk) {
      flags.select(1, edge - 1).fill_(true);
      flags.select(1, edge).fill_(true);
    }
    in.reset = flags.to(in.u.device());
    auto w = at::randn({2, 5, L}, at::TensorOptions().dtype(at::kDouble)).to(in.u.device());
    ScanInputs ref_in = in;
    for (at::Tensor* t : fields(ref_in)) {
      if (t->defined()) *t = t->to(at::kDouble);
    }
    const auto expected = run(ref_in, ScanImpl::Reference, w);
    const auto got = run(in, ScanImpl::Cuda, w);
    const std::string what = "L=" + std::to_string(L);
    expect_close(got.out, expected.out, 6e-4, 2e-3, "out " + what);
    expect_close(got.last_state, expected.last_state, 6e-4, 2e-3, "last_state " + what);
    for (size_t i = 0; i < got.grads.size(); ++i) {
      expect_close(got.grads[i], expected.grads[i], 6e-4, 2e-3, std::string("d") + kFieldNames[i] + " " + what);
    }
  }
  detail::set_poison_outputs(false);
}

#define SKIP_WITHOUT_CUDA_SCAN() \
  if (!scan_cuda_available()) GTEST_SKIP() << "no CUDA device or CUDA kernel not built: test skipped"

// The oracle: the reference in fp64 on the same values.
ScanRun reference_run(ScanInputs in, const at::Tensor& w) {
  for (at::Tensor* t : fields(in)) {
    if (t->defined()) *t = t->to(at::kDouble);
  }
  return run(in, ScanImpl::Reference, w);
}

void expect_run_close(const ScanRun& got, const ScanRun& expected, double rtol, double atol, const std::string& what) {
  expect_close(got.out, expected.out, rtol, atol, "out " + what);
  for (size_t i = 0; i < got.grads.size(); ++i) {
    ASSERT_EQ(got.grads[i].defined(), expected.grads[i].defined()) << kFieldNames[i];
    if (expected.grads[i].defined()) {
      expect_close(got.grads[i], expected.grads[i], rtol, atol, std::string("d") + kFieldNames[i] + " " + what);
    }
  }
}

// u and z in bf16, delta, B and C in fp32: the kernel widens the activations to fp32, and each
// gradient comes back in its input's dtype.
TEST(SelectiveScanCuda, MixedDtypes) {
  SKIP_WITHOUT_CUDA_SCAN();
  auto in = random_inputs(2, 4, 600, 16, Options{}, at::kFloat, 21);
  in.u = in.u.to(at::kBFloat16);
  in.z = in.z.to(at::kBFloat16);
  const auto w = at::randn({2, 4, 600}, at::TensorOptions().dtype(at::kDouble)).to(in.u.device());
  const auto got = run(in, ScanImpl::Cuda, w);
  EXPECT_EQ(got.out.scalar_type(), at::kBFloat16);
  EXPECT_EQ(got.grads[0].scalar_type(), at::kBFloat16);  // du
  EXPECT_EQ(got.grads[1].scalar_type(), at::kFloat);     // ddelta
  expect_run_close(got, reference_run(in, w), 3e-2, 5e-2, "mixed dtypes");
}

// Transposed views (as a model's (B, L, D) activations are), not made contiguous by the caller.
TEST(SelectiveScanCuda, NonContiguousInputs) {
  SKIP_WITHOUT_CUDA_SCAN();
  const int64_t Bn = 2, Dn = 6, L = 530, N = 8;
  auto in = random_inputs(Bn, Dn, L, N, Options{}, at::kFloat, 22);
  ScanInputs strided = in;
  strided.u = in.u.transpose(1, 2).contiguous().transpose(1, 2);          // (B, L, D) storage
  strided.delta = in.delta.transpose(0, 1).contiguous().transpose(0, 1);  // (D, B, L) storage
  strided.z = in.z.transpose(1, 2).contiguous().transpose(1, 2);
  strided.B = in.B.transpose(1, 2).contiguous().transpose(1, 2);
  ASSERT_FALSE(strided.u.is_contiguous());
  ASSERT_FALSE(strided.delta.is_contiguous());
  const auto w = at::randn({Bn, Dn, L}, at::TensorOptions().dtype(at::kDouble)).to(in.u.device());
  expect_run_close(run(strided, ScanImpl::Cuda, w), reference_run(in, w), 6e-4, 2e-3, "non-contiguous");
}

// Δ+bias > 20 (softplus's linear branch), Δ·A < −90 (exp underflows to 0), |z| ≥ 30 (SiLU saturates).
TEST(SelectiveScanCuda, ExtremeValues) {
  SKIP_WITHOUT_CUDA_SCAN();
  const int64_t Bn = 1, Dn = 4, L = 700, N = 16;
  auto in = random_inputs(Bn, Dn, L, N, Options{}, at::kFloat, 23);
  auto pick = at::rand({Bn, Dn, L}, at::TensorOptions().device(in.u.device())) < 0.3;
  in.delta = at::where(pick, in.delta + 25.0, in.delta);  // Δ ≈ 25 where picked
  in.A = in.A * 5.0;                                      // A in [−8.5, −1]: Δ·A down to about −210
  in.z = at::where(at::rand_like(in.z) < 0.3, at::sign(in.z) * (30.0 + at::rand_like(in.z) * 10.0), in.z);
  const auto w = at::randn({Bn, Dn, L}, at::TensorOptions().dtype(at::kDouble)).to(in.u.device());
  const auto got = run(in, ScanImpl::Cuda, w);
  for (const auto& g : got.grads) {
    if (g.defined()) EXPECT_TRUE(at::isfinite(g).all().item<bool>());
  }
  expect_run_close(got, reference_run(in, w), 1e-3, 5e-3, "extreme values");
}

// The production shape in bf16 (B=4, D=2560, L=2048, N=16), run twice: the outputs and every
// gradient documented deterministic are bitwise equal; then sampled channels against the fp64
// reference on those channels alone (a channel's out, du, ddelta, dz and its dA, dD, dbias depend
// only on its own inputs). dB and dC sum over all channels, so they are checked by rerunning the
// kernel on the sampled channels alone.
TEST(SelectiveScanCuda, ProductionShapeBf16SampledChannelsAndDeterminism) {
  SKIP_WITHOUT_CUDA_SCAN();
  const int64_t Bn = 4, Dn = 2560, L = 2048, N = 16;
  const auto in = random_inputs(Bn, Dn, L, N, Options{}, at::kBFloat16, 24);
  const auto w = at::randn({Bn, Dn, L}, at::TensorOptions().dtype(at::kDouble).device(in.u.device()));
  const ScanRun first = run(in, ScanImpl::Cuda, w), second = run(in, ScanImpl::Cuda, w);
  EXPECT_TRUE(at::equal(first.out, second.out)) << "forward not deterministic";
  for (size_t i = 0; i < first.grads.size(); ++i) {
    const std::string name = kFieldNames[i];
    if (name == "B" || name == "C") continue;  // atomically accumulated: order varies
    EXPECT_TRUE(at::equal(first.grads[i], second.grads[i])) << "d" << name << " not deterministic";
  }
  const auto channels = at::randperm(Dn, at::TensorOptions().dtype(at::kLong)).narrow(0, 0, 12).to(in.u.device());
  ScanInputs sub = in;
  for (at::Tensor* t : {&sub.u, &sub.delta, &sub.z}) *t = t->index_select(1, channels);
  for (at::Tensor* t : {&sub.A, &sub.D_skip, &sub.delta_bias}) *t = t->index_select(0, channels);
  const auto sub_w = w.index_select(1, channels);
  const ScanRun expected = reference_run(sub, sub_w);
  const ScanRun alone = run(sub, ScanImpl::Cuda, sub_w);
  ScanRun sampled{first.out.index_select(1, channels), at::Tensor(), {}};
  for (size_t i = 0; i < first.grads.size(); ++i) {
    const std::string name = kFieldNames[i];
    const auto& g = first.grads[i];
    if (name == "u" || name == "delta" || name == "z")
      sampled.grads.push_back(g.index_select(1, channels));
    else if (name == "A" || name == "D" || name == "delta_bias")
      sampled.grads.push_back(g.index_select(0, channels));
    else
      sampled.grads.push_back(alone.grads[i]);
  }
  expect_run_close(sampled, expected, 3e-2, 5e-2, "production shape, sampled channels");
}

// Small odd shapes, forward and backward, with and without z: the run compute-sanitizer checks
// (memcheck, racecheck, synccheck) in scripts/device_check.sh; here also against the reference.
TEST(SelectiveScanCudaSanitized, OddShapesForwardBackward) {
  SKIP_WITHOUT_CUDA_SCAN();
  detail::set_poison_outputs(true);
  int seed = 100;
  for (int64_t L : {1, 511, 513}) {
    for (int64_t N : {1, 7, 64}) {
      for (bool with_z : {true, false}) {
        Options o;
        o.with_z = with_z;
        auto in = random_inputs(1, 3, L, N, o, at::kFloat, seed++);
        const auto w = at::randn({1, 3, L}, at::TensorOptions().dtype(at::kDouble)).to(in.u.device());
        const std::string what = "L=" + std::to_string(L) + " N=" + std::to_string(N) + (with_z ? " z" : " no z");
        expect_run_close(run(in, ScanImpl::Cuda, w), reference_run(in, w), 6e-4, 2e-3, what);
      }
    }
  }
  detail::set_poison_outputs(false);
}

// The block size follows the length (32, 64 or 128 threads: chunks of 128, 256, 512 steps): each
// side of each switch point, against the reference.
TEST(SelectiveScanCuda, ChunkSizeSwitchPoints) {
  SKIP_WITHOUT_CUDA_SCAN();
  detail::set_poison_outputs(true);
  for (int64_t L : {127, 128, 129, 256, 257}) {
    auto in = random_inputs(2, 3, L, 16, Options{}, at::kFloat, 300 + L);
    const auto w = at::randn({2, 3, L}, at::TensorOptions().dtype(at::kDouble)).to(in.u.device());
    expect_run_close(run(in, ScanImpl::Cuda, w), reference_run(in, w), 6e-4, 2e-3, "L=" + std::to_string(L));
  }
  detail::set_poison_outputs(false);
}

// The shapes the host emulation of the kernels checks (tests/ops/test_selective_scan_cuda_emulation.cpp),
// here on the device: a length one short of a 128-step chunk and several full 512-step chunks,
// an odd d_state and the model's 16.
TEST(SelectiveScanCuda, EmulatedShapesMatchReference) {
  SKIP_WITHOUT_CUDA_SCAN();
  detail::set_poison_outputs(true);
  int seed = 400;
  for (int64_t L : {127, 2048}) {
    for (int64_t N : {7, 16}) {
      auto in = random_inputs(2, 3, L, N, Options{}, at::kFloat, seed++);
      const auto w = at::randn({2, 3, L}, at::TensorOptions().dtype(at::kDouble)).to(in.u.device());
      const std::string what = "L=" + std::to_string(L) + " N=" + std::to_string(N);
      expect_run_close(run(in, ScanImpl::Cuda, w), reference_run(in, w), 6e-4, 2e-3, what);
    }
  }
  detail::set_poison_outputs(false);
}

// Each thread reads and writes its 4 steps with one vector access only where they are aligned:
// contiguous inputs whose data starts one element into their storage take the element-wise path
// everywhere (the entry points are called directly: autograd's clones would realign them), and
// give the same results as aligned copies of themselves.
TEST(SelectiveScanCuda, MisalignedInputsTakeTheElementwisePath) {
  SKIP_WITHOUT_CUDA_SCAN();
  const int64_t Bn = 2, Dn = 3, L = 1024, N = 16;
  const auto in = random_inputs(Bn, Dn, L, N, Options{}, at::kFloat, 26);
  auto shifted = [](const at::Tensor& t) {  // the same values, contiguous, 4 bytes past an aligned start
    auto storage = at::empty({t.numel() + 1}, t.options());
    auto view = storage.narrow(0, 1, t.numel()).view(t.sizes());
    view.copy_(t);
    return view;
  };
  ScanInputs odd = in;
  for (at::Tensor* t : {&odd.u, &odd.delta, &odd.z, &odd.B, &odd.C}) *t = shifted(*t);
  ASSERT_TRUE(odd.u.is_contiguous());
  ASSERT_NE(reinterpret_cast<uintptr_t>(odd.u.data_ptr()) % 16, 0u);
  const auto dout = at::randn_like(in.u);
  const auto fwd = detail::scan_fwd_cuda(in), fwd_odd = detail::scan_fwd_cuda(odd);
  EXPECT_TRUE(at::equal(fwd.out, fwd_odd.out)) << "out";
  EXPECT_TRUE(at::equal(fwd.checkpoints, fwd_odd.checkpoints)) << "checkpoints";
  const auto g = detail::scan_bwd_cuda(detail::ScanSaved{in, fwd.checkpoints}, dout);
  const auto g_odd = detail::scan_bwd_cuda(detail::ScanSaved{odd, fwd_odd.checkpoints}, shifted(dout));
  for (const auto& [name, a, b] : {std::tuple{"du", g.du, g_odd.du},
                                   {"ddelta", g.ddelta, g_odd.ddelta},
                                   {"dz", g.dz, g_odd.dz},
                                   {"dA", g.dA, g_odd.dA},
                                   {"dD", g.dD, g_odd.dD},
                                   {"ddelta_bias", g.ddelta_bias, g_odd.ddelta_bias}}) {
    EXPECT_TRUE(at::equal(a, b)) << name;  // deterministic: bitwise equal
  }
  EXPECT_TRUE(at::allclose(g.dB, g_odd.dB, 1e-5, 1e-5)) << "dB";  // atomics: the order varies
  EXPECT_TRUE(at::allclose(g.dC, g_odd.dC, 1e-5, 1e-5)) << "dC";
}

// The backward's own inputs are checked before the kernel indexes them.
TEST(SelectiveScanCuda, BackwardRejectsMismatchedDoutAndCheckpoints) {
  SKIP_WITHOUT_CUDA_SCAN();
  const auto in = random_inputs(1, 3, 600, 4, Options{}, at::kFloat, 25);
  const auto fwd = detail::scan_fwd_cuda(in);
  auto backward = [&](const at::Tensor& ckpt, const at::Tensor& dout) {
    return detail::scan_bwd_cuda(detail::ScanSaved{in, ckpt}, dout);
  };
  EXPECT_NO_THROW(backward(fwd.checkpoints, at::ones_like(in.u)));
  auto expect_error = [&](const at::Tensor& ckpt, const at::Tensor& dout, const std::string& word) {
    try {
      backward(ckpt, dout);
      FAIL() << "expected an error naming " << word;
    } catch (const c10::Error& e) {
      EXPECT_NE(std::string(e.what()).find(word), std::string::npos) << e.what();
    }
  };
  expect_error(fwd.checkpoints, at::ones_like(in.u).narrow(2, 0, 599), "dout");
  expect_error(fwd.checkpoints.narrow(2, 0, 1), at::ones_like(in.u), "checkpoints");
}

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
