// bench_generate.cpp — inference speed and state size of all-T, all-S (sliding window), all-M,
// all-M2 and alternating models of equal depth and width: prefill tokens/s, decode tokens/s (median time per token
// after warm-up) and the bytes of state each sequence carries, at several context lengths and batch sizes.
//
//   bench_generate [--depth 4] [--dim 512] [--head_dim 64] [--patterns all_T,all_M,all_M2,alternating]
//                  [--contexts 256,1024,4096] [--batches 1,8] [--decode_steps 16] [--warmup 3]
//                  [--attn_window 512]
//                  [--device auto] [--json]
//
// --json prints one JSON object per measurement (per line), each as soon as it is taken.
//
// The models are freshly initialised (speed does not depend on the weights); vocab 65536 as in
// the d20 configs. CUDA runs under bf16 autocast as training does; CPU runs in fp32.
// Decode at context C means one new token per sequence with C tokens already in the state.
// State bytes are counted from the state's tensors: for T layers the key/value cache holding C
// positions, for S layers a ring of attn_window positions (at most C), for M and M2 layers the conv
// and SSM states (independent of C). M2 layers use the
// Mamba-2 defaults (d_state 128, headdim 64).
#include "hgpt/cli.h"
#include "hgpt/config.h"
#include "hgpt/cpu_memory.h"
#include "hgpt/errors.h"
#include "hgpt/infer/engine.h"
#include "hgpt/train/context.h"
#include "hgpt/train/metrics.h"
#include "hgpt/train/precision.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  int64_t depth = 4, dim = 512, head_dim = 64, vocab = 65536, attn_window = 512;
  std::vector<std::string> patterns = {"all_T", "all_M", "all_M2", "alternating"};
  std::vector<int64_t> contexts = {256, 1024, 4096}, batches = {1, 8};
  int decode_steps = 16, warmup = 3;
  std::string device = "auto";
  bool json = false;
};

std::string block_pattern(const std::string& name, int64_t depth) {
  std::string p;
  for (int64_t i = 0; i < depth; ++i) {
    p += name == "all_T" ? 'T' : name == "all_S" ? 'S' : name == "all_M" ? 'M' : name == "all_M2" ? '2' : "TM"[i % 2];
  }
  if (name != "all_T" && name != "all_S" && name != "all_M" && name != "all_M2" && name != "alternating") {
    throw hgpt::UserError("--patterns: unknown '" + name + "'; use all_T, all_S, all_M, all_M2, alternating");
  }
  return p;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

struct Measured {
  double prefill_tok_per_s, decode_ms_per_token, decode_tok_per_s;
  int64_t state_bytes_per_seq;
};

Measured measure(hgpt::infer::Engine& engine, int64_t context, int64_t batch, const Options& o,
                 const at::Device& device) {
  auto sync = [&] {
    if (device.is_cuda()) at::detail::getCUDAHooks().deviceSynchronize(device.index());
  };
  const auto tokens = at::randint(o.vocab, {batch, context}, at::TensorOptions().dtype(at::kLong)).to(device);
  const auto next = at::randint(o.vocab, {batch, 1}, at::TensorOptions().dtype(at::kLong)).to(device);
  Measured m{};
  {  // the state that holds `context` positions, counted exactly
    auto state = engine.new_state(context);
    engine.forward(tokens.narrow(1, 0, 1), state);
    m.state_bytes_per_seq = state.bytes() / batch;
  }
  auto state = engine.new_state(context + o.warmup + o.decode_steps);
  sync();
  auto t0 = Clock::now();
  engine.forward(tokens, state);
  sync();
  m.prefill_tok_per_s = batch * context / std::chrono::duration<double>(Clock::now() - t0).count();
  std::vector<double> ms;
  for (int i = 0; i < o.warmup + o.decode_steps; ++i) {
    t0 = Clock::now();
    engine.forward(next, state);
    sync();
    if (i >= o.warmup) ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  m.decode_ms_per_token = median(ms);
  m.decode_tok_per_s = batch / (m.decode_ms_per_token / 1e3);
  return m;
}

int run(const Options& o) {
  const at::Device device = hgpt::train::resolve_device(hgpt::parse_device_choice(o.device), 0);
  const bool cuda = device.is_cuda();
  const std::string device_text = hgpt::train::device_name(cuda, device.index());
  const int64_t max_context = *std::max_element(o.contexts.begin(), o.contexts.end());
  hgpt::train::AutocastGuard autocast(hgpt::train::uses_autocast(device));
  const nlohmann::json setup = {{"depth", o.depth},
                                {"attn_window", o.attn_window},
                                {"model_dim", o.dim},
                                {"head_dim", o.head_dim},
                                {"vocab_size", o.vocab},
                                {"device", device_text},
                                {"threads", cuda ? 0 : at::get_num_threads()},
                                {"dtype", cuda ? "bf16 autocast" : "fp32"},
                                {"warmup", o.warmup},
                                {"decode_steps", o.decode_steps}};
  if (!o.json) {
    std::printf("depth %lld, dim %lld, head_dim %lld, vocab %lld | %s", static_cast<long long>(o.depth),
                static_cast<long long>(o.dim), static_cast<long long>(o.head_dim), static_cast<long long>(o.vocab),
                device_text.c_str());
    if (!cuda) std::printf(" (%d threads)", at::get_num_threads());
    std::printf("\n%-12s %7s %5s %14s %14s %14s %16s\n", "pattern", "context", "batch", "prefill tok/s",
                "decode ms/tok", "decode tok/s", "state B/seq");
  }
  for (const auto& name : o.patterns) {
    const nlohmann::json patch = {{"depth", o.depth},
                                  {"aspect_ratio", o.dim / o.depth},
                                  {"head_dim", o.head_dim},
                                  {"vocab_size", o.vocab},
                                  {"max_seq_len", max_context + o.warmup + o.decode_steps},
                                  {"block_pattern", block_pattern(name, o.depth)},
                                  {"attn_window", o.attn_window},
                                  {"device_batch_size", 1},
                                  {"total_batch_size", max_context + o.warmup + o.decode_steps}};
    const hgpt::Config config = hgpt::config_from_json(patch);
    at::manual_seed(0);
    hgpt::model::HybridGPT model(config.model);
    model->init_weights();
    model->to(device);
    hgpt::infer::Engine engine(model);
    for (int64_t context : o.contexts) {
      for (int64_t batch : o.batches) {
        const Measured m = measure(engine, context, batch, o, device);
        if (o.json) {  // one object per line, as each measurement ends
          nlohmann::json row = setup;
          row.update({{"pattern", name},
                      {"block_pattern", config.model.block_pattern},
                      {"context", context},
                      {"batch", batch},
                      {"prefill_tok_per_s", m.prefill_tok_per_s},
                      {"decode_ms_per_token", m.decode_ms_per_token},
                      {"decode_tok_per_s", m.decode_tok_per_s},
                      {"state_bytes_per_seq", m.state_bytes_per_seq}});
          std::cout << row.dump() << std::endl;
        }
        if (!o.json) {
          std::printf("%-12s %7lld %5lld %14.0f %14.3f %14.1f %16lld\n", name.c_str(), static_cast<long long>(context),
                      static_cast<long long>(batch), m.prefill_tok_per_s, m.decode_ms_per_token, m.decode_tok_per_s,
                      static_cast<long long>(m.state_bytes_per_seq));
          std::fflush(stdout);
        }
      }
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  hgpt::keep_freed_cpu_memory();
  return hgpt::run_tool([&] {
    Options o;
    CLI::App app{"Inference speed and state size of all-T, all-M and alternating models"};
    app.add_option("--depth", o.depth, "layers")->capture_default_str()->check(CLI::PositiveNumber);
    app.add_option("--dim", o.dim, "model width (a multiple of depth and of head_dim)")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    app.add_option("--head_dim", o.head_dim, "attention head width")->capture_default_str()->check(CLI::PositiveNumber);
    app.add_option("--vocab", o.vocab, "vocabulary size")->capture_default_str()->check(CLI::PositiveNumber);
    app.add_option("--attn_window", o.attn_window, "the S layers' window")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    app.add_option("--patterns", o.patterns, "all_T, all_S, all_M, all_M2, alternating")
        ->delimiter(',')
        ->capture_default_str();
    app.add_option("--contexts", o.contexts, "context lengths")
        ->delimiter(',')
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    app.add_option("--batches", o.batches, "batch sizes")
        ->delimiter(',')
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    app.add_option("--decode_steps", o.decode_steps, "timed decode steps")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    app.add_option("--warmup", o.warmup, "untimed decode steps first")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    app.add_option("--device", o.device, "auto, cpu or cuda")
        ->capture_default_str()
        ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
    app.add_flag("--json", o.json, "print one JSON object per measurement");
    if (const auto stop = hgpt::parse_command_line(app, argc, argv)) return *stop;
    if (o.dim % o.depth != 0) throw hgpt::UserError("--dim must be a multiple of --depth");
    return run(o);
  });
}
