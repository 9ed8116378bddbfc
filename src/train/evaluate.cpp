// evaluate.cpp — validation metrics and greedy sampling.
#include "hgpt/train/evaluate.h"

#include "hgpt/tokenizer/bits_per_byte.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <ATen/core/grad_mode.h>

namespace hgpt::train {

AutocastGuard::AutocastGuard(bool enabled) : enabled_(enabled) {
  if (!enabled_) return;
  previous_ = at::autocast::is_autocast_enabled(at::kCUDA);
  at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
  at::autocast::set_autocast_enabled(at::kCUDA, true);
}

AutocastGuard::~AutocastGuard() {
  if (!enabled_) return;
  at::autocast::set_autocast_enabled(at::kCUDA, previous_);
  at::autocast::clear_cache();
}

EvalResult evaluate(model::HybridGPT& model, data::Loader& loader, int64_t steps, const at::Device& device,
                    dist::ProcessGroup& pg, const std::vector<int32_t>& token_bytes, bool autocast) {
  at::NoGradGuard no_grad;
  model->eval();
  const bool have_bytes = !token_bytes.empty();
  const auto bytes_table = have_bytes ? at::tensor(token_bytes, at::kLong) : at::Tensor();
  double sum_nats = 0.0;
  int64_t sum_bytes = 0, tokens = 0;
  EvalResult result;
  for (int64_t i = 0; i < steps; ++i) {
    const data::Batch batch = loader.next();
    const auto inputs = batch.inputs.to(device), targets = batch.targets.to(device);
    at::Tensor logits;
    {
      AutocastGuard guard(autocast);
      logits = model->forward(inputs);
    }
    const auto losses = at::cross_entropy_loss(logits.view({-1, logits.size(-1)}), targets.reshape({-1}), {},
                                               at::Reduction::None, -1);
    const auto counted = batch.targets.reshape({-1}) >= 0;
    sum_nats += losses.sum().item<double>();
    tokens += counted.sum().item<int64_t>();
    if (have_bytes) {
      sum_bytes += at::where(counted, bytes_table.index_select(0, batch.targets.reshape({-1}).clamp_min(0)),
                             at::zeros({1}, at::kLong))
                       .sum()
                       .item<int64_t>();
    }
    if (batch.answer_span.defined()) {
      result.tasks.add(data::score_answers(batch, logits.argmax(-1).to(at::kCPU)));
    }
  }
  model->train();
  // One all-reduce for everything: nats, bytes, tokens, task counts.
  std::vector<double> sums = {sum_nats, static_cast<double>(sum_bytes), static_cast<double>(tokens)};
  for (int t = 0; t < data::kNumTasks; ++t) {
    sums.push_back(static_cast<double>(result.tasks.correct[t]));
    sums.push_back(static_cast<double>(result.tasks.total[t]));
  }
  auto packed = at::tensor(sums, at::kDouble);
  if (pg.is_distributed()) {
    if (std::string(pg.backend_name()) == "nccl") packed = packed.to(device);
    pg.all_reduce_sum_(packed);
    packed = packed.to(at::kCPU);
  }
  const auto* s = packed.data_ptr<double>();
  result.tokens = static_cast<int64_t>(s[2]);
  result.loss = result.tokens > 0 ? s[0] / s[2] : 0.0;
  if (have_bytes && s[1] > 0) result.bpb = tokenizer::bits_per_byte(s[0], static_cast<int64_t>(s[1]));
  for (int t = 0; t < data::kNumTasks; ++t) {
    result.tasks.correct[t] = static_cast<int64_t>(s[3 + 2 * t]);
    result.tasks.total[t] = static_cast<int64_t>(s[4 + 2 * t]);
  }
  return result;
}

std::vector<uint32_t> greedy_continue(model::HybridGPT& model, const std::vector<uint32_t>& prompt,
                                      int64_t max_new_tokens, const at::Device& device, bool autocast) {
  at::NoGradGuard no_grad;
  model->eval();
  std::vector<int64_t> context(prompt.begin(), prompt.end());
  std::vector<uint32_t> generated;
  const int64_t max_len = model->config().sequence_len;
  for (int64_t i = 0; i < max_new_tokens; ++i) {
    const int64_t start = std::max<int64_t>(0, static_cast<int64_t>(context.size()) - max_len);
    std::vector<int64_t> window(context.begin() + start, context.end());
    const auto idx = at::tensor(window, at::kLong).view({1, -1}).to(device);
    at::Tensor logits;
    {
      AutocastGuard guard(autocast);
      logits = model->forward(idx);
    }
    const int64_t next = logits.select(1, logits.size(1) - 1).argmax(-1).item<int64_t>();
    context.push_back(next);
    generated.push_back(static_cast<uint32_t>(next));
  }
  model->train();
  return generated;
}

}  // namespace hgpt::train
