// bench_ssd.cpp — times Mamba-2's chunked scan (ops/ssd.h): forward, and forward + backward, median
// over repeats after warm-up, on the CPU (and on a CUDA device when there is one, --device cuda).
// One JSON line per measurement with --json. Its baseline is bench/ssd_torch.py (the same math in
// plain PyTorch ops with autograd) at the same shape.
#include "hgpt/cpu_memory.h"
#include "hgpt/ops/ssd.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
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

struct Options {
  int64_t batch = 8, seq = 1024, heads = 8, headdim = 64, dstate = 64, groups = 1, chunk = 256;
  int repeats = 5, warmup = 2;
  std::string device = "cpu", dtype = "fp32";
  bool json = false;
};

void sync(const at::Device& device) {
#ifdef HGPT_WITH_CUDA
  if (device.is_cuda()) at::cuda::getCurrentCUDAStream().synchronize();
#endif
}

double median_ms(const Options& o, const at::Device& device, const std::function<void()>& fn) {
  std::vector<double> ms;
  for (int i = 0; i < o.warmup + o.repeats; ++i) {
    sync(device);
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    sync(device);
    const auto t1 = std::chrono::steady_clock::now();
    if (i >= o.warmup) ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"Times Mamba-2's chunked scan (forward, forward + backward)"};
  app.add_option("--batch", o.batch);
  app.add_option("--seq", o.seq);
  app.add_option("--heads", o.heads);
  app.add_option("--headdim", o.headdim);
  app.add_option("--dstate", o.dstate);
  app.add_option("--groups", o.groups);
  app.add_option("--chunk", o.chunk);
  app.add_option("--repeats", o.repeats)->check(CLI::PositiveNumber);
  app.add_option("--warmup", o.warmup)->check(CLI::NonNegativeNumber);
  app.add_option("--device", o.device)->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--dtype", o.dtype, "x, B, C dtype (dt and A stay fp32)")->check(CLI::IsMember({"fp32", "bf16"}));
  app.add_flag("--json", o.json, "one JSON object per measurement");
  CLI11_PARSE(app, argc, argv);
  hgpt::keep_freed_cpu_memory();  // as in training: freed buffers stay in the heap for the next pass
  if (o.device == "cuda" && !at::hasCUDA()) {
    std::fprintf(stderr, "error: --device cuda but no CUDA device is visible\n");
    return 2;
  }
  const at::Device device(o.device == "cuda" ? at::kCUDA : at::kCPU);
  const auto dtype = o.dtype == "bf16" ? at::kBFloat16 : at::kFloat;
  const auto f32 = at::TensorOptions().device(device).dtype(at::kFloat);
  at::manual_seed(0);
  hgpt::ops::SsdInputs in;
  in.x = at::randn({o.batch, o.seq, o.heads, o.headdim}, f32).to(dtype).requires_grad_(true);
  in.dt = at::softplus(at::randn({o.batch, o.seq, o.heads}, f32) - 1.0).requires_grad_(true);
  in.A = (-at::exp(at::rand({o.heads}, f32) * 2.77)).requires_grad_(true);
  in.B = at::randn({o.batch, o.seq, o.groups, o.dstate}, f32).to(dtype).requires_grad_(true);
  in.C = at::randn({o.batch, o.seq, o.groups, o.dstate}, f32).to(dtype).requires_grad_(true);
  in.chunk_size = o.chunk;
  const auto dy = at::randn({o.batch, o.seq, o.heads, o.headdim}, f32).to(dtype);

  const double fwd = median_ms(o, device, [&] {
    at::NoGradGuard no_grad;
    (void)hgpt::ops::ssd(in);
  });
  const double fwd_bwd = median_ms(o, device, [&] {
    const auto out = hgpt::ops::ssd(in);
    (void)torch::autograd::grad({out.y}, {in.x, in.dt, in.A, in.B, in.C}, {dy});
  });
  const int threads = device.is_cpu() ? at::get_num_threads() : 0;
  for (auto [what, ms] : {std::pair{"forward", fwd}, {"forward_backward", fwd_bwd}}) {
    if (o.json) {
      std::printf(
          "{\"impl\":\"hgpt-ssd\",\"pass\":\"%s\",\"device\":\"%s\",\"dtype\":\"%s\",\"threads\":%d,\"batch\":%lld,"
          "\"seq\":%lld,\"heads\":%lld,\"headdim\":%lld,\"dstate\":%lld,\"groups\":%lld,\"chunk\":%lld,"
          "\"median_ms\":%.3f}\n",
          what, o.device.c_str(), o.dtype.c_str(), threads, (long long)o.batch, (long long)o.seq, (long long)o.heads,
          (long long)o.headdim, (long long)o.dstate, (long long)o.groups, (long long)o.chunk, ms);
    } else {
      std::printf("%-17s %s %s B=%lld L=%lld H=%lld P=%lld N=%lld G=%lld Q=%lld: %.2f ms\n", what, o.device.c_str(),
                  o.dtype.c_str(), (long long)o.batch, (long long)o.seq, (long long)o.heads, (long long)o.headdim,
                  (long long)o.dstate, (long long)o.groups, (long long)o.chunk, ms);
    }
  }
  return 0;
}
