// bench_scan.cpp — times the selective scan implementations (reference, fused CPU, CUDA): forward
// and forward+backward, median over repeats after warm-up; a table, or JSON lines with --json.
#include "hgpt/ops/selective_scan.h"
#include "src/ops/selective_scan_dispatch.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <CLI/CLI.hpp>
#ifdef HGPT_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#endif

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace {

using hgpt::ops::ScanImpl;
using hgpt::ops::ScanInputs;

struct Shape {
  int64_t batch, dim, seqlen, dstate;
  bool channels_last = false;  // u, delta, z, B, C as (B, L, ·) memory, as the Mamba mixer passes them
  std::string str() const {
    return "B=" + std::to_string(batch) + ",D=" + std::to_string(dim) + ",L=" + std::to_string(seqlen) +
           ",N=" + std::to_string(dstate) + (channels_last ? ",channels_last" : "");
  }
};

ScanInputs make_inputs(const Shape& s, at::Device device, at::ScalarType dtype) {
  auto f = at::TensorOptions().device(device).dtype(at::kFloat);
  ScanInputs in;
  in.u = at::randn({s.batch, s.dim, s.seqlen}, f).to(dtype);
  in.delta = (at::randn({s.batch, s.dim, s.seqlen}, f) * 0.5 - 1.0).to(dtype);
  in.z = at::randn({s.batch, s.dim, s.seqlen}, f).to(dtype);
  in.A = -(at::rand({s.dim, s.dstate}, f) + 0.5);
  in.B = at::randn({s.batch, s.dstate, s.seqlen}, f).to(dtype);
  in.C = at::randn({s.batch, s.dstate, s.seqlen}, f).to(dtype);
  in.D_skip = at::randn({s.dim}, f);
  in.delta_bias = at::rand({s.dim}, f) * 0.5;
  in.delta_softplus = true;
  if (s.channels_last) {
    for (at::Tensor* t : {&in.u, &in.delta, &in.z, &in.B, &in.C}) *t = t->transpose(1, 2).contiguous().transpose(1, 2);
  }
  return in;
}

// Minimal bytes of one forward: every input read once, the output written once.
double forward_bytes(const ScanInputs& in) {
  double bytes = 0;
  for (const at::Tensor* t : {&in.u, &in.delta, &in.z, &in.A, &in.B, &in.C, &in.D_skip, &in.delta_bias}) {
    bytes += static_cast<double>(t->numel() * t->element_size());
  }
  return bytes + static_cast<double>(in.u.numel() * in.u.element_size());
}

void sync(at::Device device) {
#ifdef HGPT_WITH_CUDA
  if (device.is_cuda()) at::cuda::getCurrentCUDAStream().synchronize();
#endif
}

double median_ms(const std::function<void()>& fn, at::Device device, int warmup, int repeats) {
  for (int i = 0; i < warmup; ++i) fn();
  sync(device);
  std::vector<double> times;
  for (int i = 0; i < repeats; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    sync(device);
    times.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

struct Result {
  std::string impl, shape;
  double fwd_ms, fwd_bwd_ms, speedup, gb_per_s;
  double ns_per_state;  // forward time per (batch, channel, step, state) element
  std::string runs_on;  // the fused CPU kernel's instruction set and threads; the device otherwise
};

Result measure(ScanImpl impl, const Shape& s, at::Device device, at::ScalarType dtype, int warmup, int repeats) {
  auto in = make_inputs(s, device, dtype);
  const double fwd = median_ms([&] { (void)hgpt::ops::selective_scan(in, false, impl); }, device, warmup, repeats);
  ScanInputs g = in;
  std::vector<at::Tensor> leaves;
  for (at::Tensor* t : {&g.u, &g.delta, &g.A, &g.B, &g.C, &g.D_skip, &g.z, &g.delta_bias}) {
    *t = t->detach().requires_grad_(true);
    leaves.push_back(*t);
  }
  const auto dout = at::randn_like(in.u);
  const double fwd_bwd = median_ms(
      [&] {
        auto out = hgpt::ops::selective_scan(g, false, impl).out;
        (void)torch::autograd::grad({out}, leaves, {dout});
      },
      device, warmup, repeats);
  const double states = static_cast<double>(s.batch * s.dim * s.seqlen * s.dstate);
  std::string runs_on = device.is_cuda() ? "cuda" : "cpu";
  if (impl == ScanImpl::FusedCpu) {
    const int threads = hgpt::ops::detail::scan_cpu_threads_used(s.batch, s.dim);
    runs_on = std::string(hgpt::ops::detail::scan_cpu_capability()) + " x " + std::to_string(threads) + " threads";
  }
  return {hgpt::ops::scan_impl_name(impl),
          s.str(),
          fwd,
          fwd_bwd,
          1.0,
          forward_bytes(in) / (fwd * 1e6),
          fwd * 1e6 / states,
          runs_on};
}

void report(std::vector<Result> results, bool json) {
  // Speed-up against the reference on the same device/shape (the first result of each group).
  const double ref_fb = results.front().fwd_bwd_ms;
  for (auto& r : results) r.speedup = ref_fb / r.fwd_bwd_ms;
  for (const auto& r : results) {
    if (json) {
      std::printf(
          "{\"impl\": \"%s\", \"shape\": \"%s\", \"fwd_ms\": %.4f, \"fwd_bwd_ms\": %.4f, "
          "\"speedup_vs_reference\": %.2f, \"gb_per_s\": %.3f, \"ns_per_state_fwd\": %.3f, "
          "\"runs_on\": \"%s\"}\n",
          r.impl.c_str(), r.shape.c_str(), r.fwd_ms, r.fwd_bwd_ms, r.speedup, r.gb_per_s, r.ns_per_state,
          r.runs_on.c_str());
    } else {
      std::printf(
          "%-10s %-26s fwd %10.3f ms   fwd+bwd %10.3f ms   speed-up (fwd+bwd) %7.2fx   %8.2f GB/s"
          "   %.3f ns/state   (%s)\n",
          r.impl.c_str(), r.shape.c_str(), r.fwd_ms, r.fwd_bwd_ms, r.speedup, r.gb_per_s, r.ns_per_state,
          r.runs_on.c_str());
    }
  }
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench_scan: time the selective scan implementations"};
  Shape cpu{2, 512, 1024, 16}, gpu{8, 2048, 2048, 16};
  int warmup = 2, repeats = 5, ref_warmup = 1, ref_repeats = 2;
  bool json = false, skip_cpu = false, skip_gpu = false, skip_reference = false;
  std::string gpu_dtype = "bf16";
  app.add_option("--cpu-batch", cpu.batch);
  app.add_option("--cpu-dim", cpu.dim);
  app.add_option("--cpu-seqlen", cpu.seqlen);
  app.add_option("--cpu-dstate", cpu.dstate);
  app.add_flag("--cpu-channels-last", cpu.channels_last, "inputs in the layout the Mamba mixer passes (no copies)");
  app.add_option("--gpu-batch", gpu.batch);
  app.add_option("--gpu-dim", gpu.dim);
  app.add_option("--gpu-seqlen", gpu.seqlen);
  app.add_option("--gpu-dstate", gpu.dstate);
  app.add_option("--gpu-dtype", gpu_dtype, "u/delta/z/B/C dtype on the GPU")
      ->check(CLI::IsMember({"fp32", "bf16", "fp16"}));
  app.add_flag("--gpu-channels-last", gpu.channels_last,
               "inputs in the layout the Mamba mixer passes (the CUDA launcher copies them to (B, D, L))");
  app.add_option("--warmup", warmup);
  app.add_option("--repeats", repeats);
  app.add_option("--ref-warmup", ref_warmup, "warm-up runs for the (slow) reference");
  app.add_option("--ref-repeats", ref_repeats, "repeats for the (slow) reference");
  app.add_flag("--json", json, "one JSON object per line per measurement");
  app.add_flag("--skip-cpu", skip_cpu);
  app.add_flag("--skip-gpu", skip_gpu);
  app.add_flag("--skip-reference", skip_reference, "time the fused kernels only (speed-ups are then vs themselves)");
  CLI11_PARSE(app, argc, argv);

  if (!skip_cpu) {
    const at::Device dev(at::kCPU);
    std::vector<Result> rs;
    if (!skip_reference) rs.push_back(measure(ScanImpl::Reference, cpu, dev, at::kFloat, ref_warmup, ref_repeats));
    rs.push_back(measure(ScanImpl::FusedCpu, cpu, dev, at::kFloat, warmup, repeats));
    report(rs, json);
  }
  if (!skip_gpu && hgpt::ops::scan_cuda_available()) {
    const at::Device dev(at::kCUDA, 0);
    const auto dtype = gpu_dtype == "fp32" ? at::kFloat : gpu_dtype == "fp16" ? at::kHalf : at::kBFloat16;
    std::vector<Result> rs;
    if (!skip_reference) rs.push_back(measure(ScanImpl::Reference, gpu, dev, dtype, ref_warmup, ref_repeats));
    rs.push_back(measure(ScanImpl::Cuda, gpu, dev, dtype, warmup, repeats));
    report(rs, json);
  } else if (!skip_gpu && !json) {
    std::printf("(CUDA kernel not available here: no CUDA build or no device)\n");
  }
  return 0;
}
