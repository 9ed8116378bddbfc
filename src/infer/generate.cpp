// generate.cpp — next-token sampling and the prefill-then-decode loop.
#include "hgpt/infer/generate.h"

#include "hgpt/errors.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/detail/CUDAHooksInterface.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <string>

namespace hgpt::infer {

// ---------------------------------------------------------------------------------------------
// Sampling

namespace {
void check_params(const SamplingParams& p) {
  if (!(p.temperature >= 0))
    throw UserError("--temperature must be >= 0 (0: greedy), got " + std::to_string(p.temperature));
  if (!(p.top_p > 0 && p.top_p <= 1)) throw UserError("--top_p must be in (0, 1], got " + std::to_string(p.top_p));
}
}  // namespace

at::Tensor sample_next(const at::Tensor& logits_in, const SamplingParams& p, at::Generator& generator) {
  check_params(p);
  const auto logits = logits_in.detach().to(at::kCPU, at::kFloat);
  if (!at::isfinite(logits).all().item<bool>())
    throw UserError(
        "the model's logits are not finite (NaN or infinite activations): this checkpoint cannot "
        "generate; use an earlier one");
  if (p.temperature == 0) return logits.argmax(-1);
  // Shifted so the largest is 0 first, and the temperature kept a normal float (below 1e-30 every
  // draw is the argmax anyway): a tiny temperature gives 0 and −inf, never 0/0 or inf − inf.
  const double temperature = std::max(p.temperature, 1e-30);
  auto scaled = (logits - std::get<0>(logits.max(-1, /*keepdim=*/true))) / temperature;
  if (p.top_k > 0 && p.top_k < scaled.size(-1)) {  // everything below the k-th largest → −inf
    const auto kth = std::get<0>(scaled.topk(p.top_k, -1)).narrow(-1, p.top_k - 1, 1);
    scaled = scaled.masked_fill(scaled < kth, -INFINITY);
  }
  auto probs = at::softmax(scaled, -1);
  if (p.top_p < 1) {  // keep the most likely tokens until their mass reaches top_p (at least one)
    const auto [sorted, order] = probs.sort(-1, /*descending=*/true);
    auto dropped_sorted = sorted.cumsum(-1) - sorted >= p.top_p;  // the mass before it already suffices
    dropped_sorted.select(-1, 0).fill_(false);  // the most likely always stays (a top_p below float's least: 0 ≥ 0)
    probs = probs.masked_fill(at::zeros_like(dropped_sorted).scatter(-1, order, dropped_sorted), 0.0);
  }
  return at::multinomial(probs, 1, /*replacement=*/false, generator).squeeze(-1);
}

// ---------------------------------------------------------------------------------------------
// Generation

Generation generate(Engine& engine, const std::vector<uint32_t>& prompt, const GenerateOptions& options,
                    const TokenCallback& on_token) {
  using Clock = std::chrono::steady_clock;
  check_params(options.sampling);
  const int64_t max_len = engine.model()->config().sequence_len;
  const int64_t prompt_len = static_cast<int64_t>(prompt.size());
  if (prompt_len == 0) throw UserError("the prompt is empty; give at least one token");
  if (prompt_len > max_len) {
    throw UserError("the prompt has " + std::to_string(prompt_len) +
                    " tokens but the model takes at most max_seq_len " + std::to_string(max_len) +
                    "; shorten the prompt");
  }
  if (options.num_samples < 1 || options.num_samples > kMaxSamples)
    throw UserError("--num_samples must be in 1.." + std::to_string(kMaxSamples) + ", got " +
                    std::to_string(options.num_samples));
  if (options.max_tokens < 0) throw UserError("--max_tokens must be >= 0");
  Generation out;
  out.tokens.resize(options.num_samples);
  // The last sampled token is never fed back, so the state needs prompt + new_tokens − 1 positions,
  // at most max_seq_len.
  const int64_t room = max_len - prompt_len + 1;
  const int64_t new_tokens = std::min(options.max_tokens, room);
  if (new_tokens == 0) return out;

  const auto device = engine.model()->parameters().front().device();
  std::vector<int64_t> ids(prompt.begin(), prompt.end());
  const auto batch = at::tensor(ids, at::kLong).view({1, -1}).expand({options.num_samples, -1}).contiguous().to(device);
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(options.sampling.seed);
  InferenceState state = engine.new_state(prompt_len + new_tokens - 1);

  std::vector<bool> running(options.num_samples, true);
  int64_t live = options.num_samples;
  auto sync = [&] {
    if (device.is_cuda()) at::detail::getCUDAHooks().deviceSynchronize(device.index());
  };
  auto t0 = Clock::now();
  at::Tensor logits = engine.forward(batch, state).select(1, prompt_len - 1);
  sync();
  out.prefill_tokens = prompt_len * options.num_samples;
  out.prefill_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  t0 = Clock::now();
  for (int64_t i = 0; i < new_tokens && live > 0; ++i) {
    const auto next = sample_next(logits, options.sampling, generator);  // CPU (B)
    const auto* next_ptr = next.data_ptr<int64_t>();
    std::vector<uint32_t> step_tokens(options.num_samples);
    const std::vector<bool> was_running = running;
    for (int64_t b = 0; b < options.num_samples; ++b) {
      step_tokens[b] = static_cast<uint32_t>(next_ptr[b]);
      if (!running[b]) continue;
      if (options.stop_token && step_tokens[b] == *options.stop_token) {
        running[b] = false, --live;
      } else {
        out.tokens[b].push_back(step_tokens[b]);
      }
    }
    if (on_token) on_token(step_tokens, was_running);
    if (i + 1 < new_tokens && live > 0) {
      logits = engine.forward(next.to(device).view({-1, 1}), state).select(1, 0);
      out.decoded_tokens += options.num_samples;
    }
  }
  sync();
  out.decode_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  out.hit_length_limit = live > 0 && options.max_tokens > room;  // still going when the length ran out
  return out;
}

}  // namespace hgpt::infer
