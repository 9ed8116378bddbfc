// bench_step.cpp — times one full training step (forward + backward over the grad-accumulation
// micro-batches, then the optimizer updates) for a config, built exactly as base_train builds it:
// median ms per step after warm-up, tokens per second and, with a peak FLOP/s, MFU; and the peak
// tensor memory over the whole run (model, optimizer state, every step) next to the dry-run's
// estimate for the same config (PeakMemory: the CUDA allocator's peak, or on the CPU the peak of
// live allocations).
//
//   bench_step CONFIG.json [--key=value ...] [--steps N] [--warmup N] [--peak_flops F] [--json]
//
// --key=value are config overrides as for base_train (e.g. --block_pattern=TMTM --max_seq_len=256).
// --peak_flops F (FLOP/s) overrides the known-GPU table; without either, MFU is not reported.
// --breakdown also times the parts of a step one by one (median over --steps): forward+backward
// of each block alone on a random (batch, seq, dim) input, of the whole model (loss included),
// the gradient clipping and each optimizer's update.
#include "hgpt/config.h"
#include "hgpt/cpu_memory.h"
#include "hgpt/data/loader.h"
#include "hgpt/dist/process_group.h"
#include "hgpt/errors.h"
#include "hgpt/model/block_kinds.h"
#include "hgpt/model/gpt.h"
#include "hgpt/model/sizes.h"
#include "hgpt/optim/optimizer.h"
#include "hgpt/optim/schedule.h"
#include "hgpt/train/evaluate.h"
#include "hgpt/train/metrics.h"
#include "hgpt/train/optimizers.h"
#include "hgpt/train/peak_memory.h"
#include "hgpt/train/precision.h"
#include "hgpt/train/trainer.h"

#include <ATen/Parallel.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

namespace {

struct Options {
  std::string config_path;
  std::vector<std::string> overrides;  // "key=value"
  int steps = 10, warmup = 3;
  double peak_flops = -1.0;
  bool json = false, breakdown = false;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Median ms of fn() over `repeats` runs after one warm-up run.
double median_ms(int repeats, bool cuda, const at::Device& device, const std::function<void()>& fn) {
  std::vector<double> ms;
  for (int i = 0; i <= repeats; ++i) {
    const double t0 = now_ms();
    fn();
    if (cuda) at::detail::getCUDAHooks().deviceSynchronize(device.index());
    if (i > 0) ms.push_back(now_ms() - t0);
  }
  return median(ms);
}

// Where one step's time goes (see --breakdown). Clears the gradients it makes.
nlohmann::json breakdown(hgpt::model::HybridGPT& gpt, hgpt::train::Optimizers& optimizers, hgpt::data::Loader& loader,
                         const hgpt::Config& config, int64_t accum, const at::Device& device, int repeats) {
  const auto& m = config.model;
  const int64_t batch = config.train.device_batch_size, seq = m.sequence_len, dim = m.model_dim();
  const bool cuda = device.is_cuda(), autocast = hgpt::train::uses_autocast(device);
  auto clear_grads = [&] {
    for (auto& p : gpt->parameters()) p.mutable_grad() = at::Tensor();
  };
  nlohmann::json blocks = nlohmann::json::array();
  const hgpt::model::LayerContext context{hgpt::model::rotary_tables(seq, m.attn_head_dim(), device)};
  const auto opts = at::TensorOptions().device(device);
  for (const auto& block : gpt->blocks()) {
    const auto x = at::randn({batch, seq, dim}, opts).requires_grad_(true);
    const auto grad = at::randn({batch, seq, dim}, opts);
    const double ms = median_ms(repeats, cuda, device, [&] {
      at::Tensor y;
      {
        const hgpt::train::AutocastGuard guard(autocast);
        y = block->forward(x, context);
      }
      y.backward(grad);
    });
    blocks.push_back({{"kind", hgpt::model::find_block_kind(block->kind())->short_name}, {"fwd_bwd_ms", ms * accum}});
  }
  clear_grads();
  const auto b = loader.next();
  const auto inputs = b.inputs.to(device), targets = b.targets.to(device);
  const double model_ms = median_ms(repeats, cuda, device, [&] {
    at::Tensor loss;
    {
      const hgpt::train::AutocastGuard guard(autocast);
      loss = gpt->loss(inputs, targets);
    }
    loss.backward();
  });
  std::vector<at::Tensor> params;
  for (auto& p : gpt->parameters()) params.push_back(p);
  const double clip_ms =
      median_ms(repeats, cuda, device, [&] { (void)hgpt::optim::clip_grad_norm(params, config.train.grad_clip); });
  const double muon_ms = median_ms(repeats, cuda, device, [&] { optimizers.muon->step(); });
  const double adamw_ms = median_ms(repeats, cuda, device, [&] { optimizers.adamw->step(); });
  clear_grads();
  return {{"blocks", blocks},
          {"model_fwd_bwd_ms", model_ms * accum},
          {"grad_clip_ms", clip_ms},
          {"muon_step_ms", muon_ms},
          {"adamw_step_ms", adamw_ms}};
}

int run(const Options& o) {
  const hgpt::Config config =
      hgpt::train::with_document_bos(hgpt::load_config(o.config_path, o.overrides, /*world_size=*/1));
  const auto& t = config.train;
  const at::Device device = hgpt::train::resolve_device(t.device, 0);
  const bool cuda = device.is_cuda();
  auto pg = hgpt::dist::ProcessGroup::create(hgpt::dist::DistEnv{}, cuda);  // one process: no-op

  const int64_t accum = hgpt::grad_accum_steps(config, 1);
  hgpt::data::Loader loader(hgpt::train::loader_spec(config, "train", 0, 1));
  const hgpt::train::PeakMemory memory(device);  // before the model: weights and optimizer state count
  auto gpt = hgpt::train::build_model(config, device);
  auto optimizers = hgpt::train::build_optimizers(gpt, config);
  const hgpt::train::Context ctx{config, *pg, device, hgpt::train::uses_autocast(device)};

  std::vector<double> ms;
  double loss = 0.0;
  for (int i = 0; i < o.warmup + o.steps; ++i) {
    optimizers.muon->set_momentum(hgpt::optim::muon_momentum(i));
    const auto t0 = std::chrono::steady_clock::now();
    loss = hgpt::train::train_step(ctx, gpt, optimizers, loader, accum).loss;
    if (cuda) at::detail::getCUDAHooks().deviceSynchronize(device.index());
    const double dt = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (i >= o.warmup) ms.push_back(dt);
  }

  const double med_ms = median(ms);
  const double tok_per_s = t.total_batch_size / (med_ms / 1e3);
  const double flops_per_token = hgpt::model::flops_per_token(config.model);
  const std::string name = hgpt::train::device_name(cuda, device.index());
  const double peak = hgpt::train::peak_flops_for(name, o.peak_flops > 0 ? o.peak_flops : t.peak_flops);
  const double mfu = peak > 0 ? 100.0 * flops_per_token * tok_per_s / peak : -1.0;
  const int64_t peak_bytes = memory.peak_bytes();
  const int64_t estimated_bytes = hgpt::model::estimate_memory(config.model, t.device_batch_size, cuda).total();

  nlohmann::json j = {{"config", o.config_path},
                      {"block_pattern", config.model.block_pattern},
                      {"depth", config.model.depth},
                      {"model_dim", config.model.model_dim()},
                      {"max_seq_len", config.model.sequence_len},
                      {"device_batch_size", t.device_batch_size},
                      {"grad_accum_steps", accum},
                      {"tokens_per_step", t.total_batch_size},
                      {"parameters", hgpt::model::count_parameters(config.model).total},
                      {"flops_per_token", flops_per_token},
                      {"device", name},
                      {"threads", cuda ? 0 : at::get_num_threads()},
                      {"warmup", o.warmup},
                      {"steps", o.steps},
                      {"median_ms", med_ms},
                      {"min_ms", *std::min_element(ms.begin(), ms.end())},
                      {"max_ms", *std::max_element(ms.begin(), ms.end())},
                      {"tok_per_s", tok_per_s},
                      {"last_loss", loss},
                      {"activation_checkpointing", hgpt::to_string(config.model.activation_checkpointing)},
                      {"peak_memory_bytes", peak_bytes},
                      {"estimated_memory_bytes", estimated_bytes},
                      {"estimate_over_peak", peak_bytes > 0 ? double(estimated_bytes) / double(peak_bytes) : -1.0}};
  if (mfu >= 0) j["mfu_percent"] = mfu, j["peak_flops"] = peak;
  if (o.breakdown) j["breakdown"] = breakdown(gpt, optimizers, loader, config, accum, device, o.steps);
  if (o.json) {
    std::cout << j.dump() << std::endl;
    return 0;
  }
  std::printf("config %s | pattern %s | depth %lld, dim %lld, seq %lld, batch %lld x %lld accum | %s",
              o.config_path.c_str(), config.model.block_pattern.c_str(), static_cast<long long>(config.model.depth),
              static_cast<long long>(config.model.model_dim()), static_cast<long long>(config.model.sequence_len),
              static_cast<long long>(t.device_batch_size), static_cast<long long>(accum), name.c_str());
  if (!cuda) std::printf(" (%d threads)", at::get_num_threads());
  std::printf("\nstep: median %.2f ms (min %.2f, max %.2f) over %d steps after %d warm-up | %.0f tok/s", med_ms,
              j["min_ms"].get<double>(), j["max_ms"].get<double>(), o.steps, o.warmup, tok_per_s);
  if (mfu >= 0) std::printf(" | MFU %.2f%% of %.3g FLOP/s", mfu, peak);
  std::printf(" | %.4g FLOP/token\n", flops_per_token);
  std::printf("memory: peak %.1f MiB, dry-run estimate %.1f MiB (%.2f x the peak)\n", peak_bytes / 1048576.0,
              estimated_bytes / 1048576.0, j["estimate_over_peak"].get<double>());
  if (o.breakdown) {
    const auto& b = j["breakdown"];
    std::printf("per step (x %lld micro-batches): model fwd+bwd %.2f ms", static_cast<long long>(accum),
                b["model_fwd_bwd_ms"].get<double>());
    for (const auto& blk : b["blocks"]) {
      std::printf(" | %s %.2f", blk["kind"].get<std::string>().c_str(), blk["fwd_bwd_ms"].get<double>());
    }
    std::printf("\ngrad clip %.2f ms | muon %.2f ms | adamw %.2f ms\n", b["grad_clip_ms"].get<double>(),
                b["muon_step_ms"].get<double>(), b["adamw_step_ms"].get<double>());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  hgpt::keep_freed_cpu_memory();
  Options o;
  CLI::App app{"Time one training step (forward + backward + optimizer) of a config"};
  app.add_option("config", o.config_path, "JSON config (configs/*.json)")->required();
  app.add_option("--steps", o.steps, "timed steps")->check(CLI::PositiveNumber);
  app.add_option("--warmup", o.warmup, "untimed steps first")->check(CLI::NonNegativeNumber);
  app.add_option("--peak_flops", o.peak_flops, "peak FLOP/s for MFU (default: known-GPU table)");
  app.add_flag("--json", o.json, "print one JSON object");
  app.add_flag("--breakdown", o.breakdown, "also time each block's forward+backward, the model's and the optimizers'");
  app.allow_extras();  // the rest are config overrides --key=value
  try {
    app.parse(argc, argv);
    for (const std::string& extra : app.remaining()) {
      if (extra.rfind("--", 0) != 0 || extra.find('=') == std::string::npos) {
        throw hgpt::UserError("unexpected argument '" + extra + "' (config overrides are --key=value)");
      }
      o.overrides.push_back(extra.substr(2));
    }
    return run(o);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const hgpt::UserError& e) {
    std::cerr << "error: " << e.what() << std::endl;
    return hgpt::kExitUserError;
  } catch (const std::exception& e) {
    std::cerr << "fatal: " << e.what() << std::endl;
    return 1;
  }
}
