// evaluate.cpp — validation metrics, greedy samples (through the inference engine), and their
// printing and recording.
#include "hgpt/train/evaluate.h"

#include "hgpt/config.h"
#include "hgpt/data/synthetic.h"
#include "hgpt/dist/process_group.h"
#include "hgpt/errors.h"
#include "hgpt/infer/generate.h"
#include "hgpt/infer/text_codec.h"
#include "hgpt/strings.h"
#include "hgpt/tokenizer/bits_per_byte.h"
#include "hgpt/tokenizer/tokenizer.h"
#include "hgpt/train/precision.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <sstream>

namespace hgpt::train {

EvalPlan plan_evaluation(const Config& config, int world_size, const data::Loader& val_loader) {
  const int64_t eval_tokens = config.train.eval_tokens, row_tokens = config.model.sequence_len;
  const int64_t rows_per_step = config.train.device_batch_size * world_size;
  EvalPlan plan;
  plan.steps = std::max<int64_t>(1, eval_tokens / (rows_per_step * row_tokens));
  plan.tokens = plan.steps * rows_per_step * row_tokens;
  const int64_t windows = val_loader.windows_per_epoch();
  const bool whole_split = !val_loader.synthetic() && plan.steps * rows_per_step > windows;
  if (whole_split) {
    plan.steps = (windows + rows_per_step - 1) / rows_per_step;
    plan.rows = windows;
    plan.tokens = windows * row_tokens;
  }
  const std::string asked = "eval_tokens " + std::to_string(eval_tokens);
  const std::string split = "the validation split of " + config.train.data + " (" + std::to_string(windows) +
                            " windows of " + std::to_string(row_tokens) + " tokens)";
  if (whole_split && plan.tokens < eval_tokens) {
    plan.note = asked + " is more than " + split + " holds: each window counts once, " + std::to_string(plan.tokens) +
                " tokens";
  } else if (plan.tokens != eval_tokens) {
    plan.note = asked + " is counted in whole micro-batches of " + std::to_string(rows_per_step) + " rows of " +
                std::to_string(row_tokens) + " tokens: " + std::to_string(plan.tokens) + " tokens" +
                (whole_split ? ", all of " + split : std::string());
  }
  return plan;
}

EvalResult evaluate(const Context& ctx, model::HybridGPT& model, data::Loader& loader, const EvalPlan& plan,
                    const std::vector<int32_t>& token_bytes) {
  const at::Device& device = ctx.device;
  dist::ProcessGroup& pg = ctx.pg;
  at::NoGradGuard no_grad;
  model->eval();
  const bool have_bytes = !token_bytes.empty();
  const auto bytes_table = have_bytes ? at::tensor(token_bytes, at::kLong) : at::Tensor();
  const data::LoaderSpec& spec = loader.spec();
  double sum_nats = 0.0;
  int64_t sum_bytes = 0, tokens = 0, unknown = 0;
  EvalResult result;
  for (int64_t i = 0; i < plan.steps; ++i) {
    const int64_t first_row = (loader.position() * spec.world_size + spec.rank) * spec.batch_size;
    const data::Batch batch = loader.next();
    at::Tensor targets = batch.targets;
    if (plan.rows >= 0 && first_row + spec.batch_size > plan.rows) {  // rows past the split count nothing
      targets = targets.clone();
      targets.slice(0, std::clamp<int64_t>(plan.rows - first_row, 0, spec.batch_size)).fill_(-1);
    }
    const auto inputs = batch.inputs.to(device);
    at::Tensor logits;
    {
      AutocastGuard guard(ctx.autocast);
      logits = model->forward(inputs);
    }
    const auto flat_targets = targets.reshape({-1});
    const auto losses = at::cross_entropy_loss(logits.view({-1, logits.size(-1)}), flat_targets.to(device), {},
                                               at::Reduction::None, -1);
    const auto counted = flat_targets >= 0;
    sum_nats += losses.sum().item<double>();
    tokens += counted.sum().item<int64_t>();
    if (have_bytes) {
      const auto target_bytes = bytes_table.index_select(0, flat_targets.clamp_min(0));
      unknown += at::logical_and(counted, target_bytes < 0).sum().item<int64_t>();
      sum_bytes += at::where(counted, target_bytes.clamp_min(0), at::zeros({1}, at::kLong)).sum().item<int64_t>();
    }
    if (batch.answer_span.defined()) {
      result.tasks.add(data::score_answers(batch, logits.argmax(-1).to(at::kCPU)));
    }
  }
  model->train();
  // One all-reduce for everything: nats, bytes, tokens, task counts, targets the tokenizer lacks.
  std::vector<double> sums = {sum_nats, static_cast<double>(sum_bytes), static_cast<double>(tokens),
                              static_cast<double>(unknown)};
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
  if (s[3] > 0) {
    const auto known = std::find(token_bytes.begin(), token_bytes.end(), -1) - token_bytes.begin();
    throw UserError("the validation data " + spec.data + " holds " + std::to_string(static_cast<int64_t>(s[3])) +
                    " tokens with ids past the tokenizer's " + std::to_string(known) +
                    ", so it was not made with this tokenizer; use the tokenizer its shards were made with");
  }
  result.tokens = static_cast<int64_t>(s[2]);
  result.loss = result.tokens > 0 ? s[0] / s[2] : 0.0;
  if (have_bytes && s[1] > 0) result.bpb = tokenizer::bits_per_byte(s[0], static_cast<int64_t>(s[1]));
  for (int t = 0; t < data::kNumTasks; ++t) {
    result.tasks.correct[t] = static_cast<int64_t>(s[4 + 2 * t]);
    result.tasks.total[t] = static_cast<int64_t>(s[5 + 2 * t]);
  }
  return result;
}

data::LoaderSpec loader_spec(const Config& config, const std::string& split, int rank, int world_size) {
  const auto& t = config.train;
  const uint64_t seed = split == "val" ? t.val_seed : t.seed;
  return data::LoaderSpec{t.data, split, t.device_batch_size, config.model.sequence_len, config.model.vocab_size,
                          seed,   rank,  world_size};
}

Config config_at_length(const Config& config, int64_t seq_len) {
  if (seq_len < 1 || seq_len > kMaxSeqLen)
    throw UserError("evaluation length " + std::to_string(seq_len) + " is outside 1.." + std::to_string(kMaxSeqLen));
  Config at = config;
  const int64_t trained = config.model.sequence_len;
  at.model.sequence_len = seq_len;
  if (seq_len > trained)
    at.train.device_batch_size = std::max<int64_t>(1, config.train.device_batch_size * trained / seq_len);
  return at;
}

std::vector<int32_t> token_byte_lengths(const Config& config, const tokenizer::Tokenizer* tokenizer) {
  std::vector<int32_t> bytes;
  if (tokenizer) {
    bytes = tokenizer->token_byte_lengths();
  } else if (config.train.data == "synthetic") {
    bytes.assign(data::kByteVocab, 1);
    bytes[data::kByteBos] = 0;
  } else {
    return bytes;
  }
  bytes.resize(config.model.vocab_size, -1);  // ids past the tokenizer: data it did not make
  return bytes;
}

nlohmann::json eval_record(const EvalResult& r) {
  nlohmann::json j;
  j["val_loss"] = r.loss;
  if (r.bpb >= 0) j["val_bpb"] = r.bpb;
  for (int t = 0; t < data::kNumTasks; ++t) {
    if (r.tasks.total[t] > 0) {
      j[std::string("acc_") + data::task_name(static_cast<data::Task>(t + 1))] = r.tasks.accuracy(t);
    }
  }
  return j;
}

std::string format_eval(const nlohmann::json& j) {
  std::ostringstream out;
  out.precision(4);
  out << "val loss " << std::fixed << j.value("val_loss", 0.0);
  if (j.contains("val_bpb")) out << " | bpb " << j["val_bpb"].get<double>();
  for (const auto& [key, v] : j.items()) {
    if (starts_with(key, "acc_")) out << " | " << key << " " << v.get<double>();
  }
  return out.str();
}

namespace {

// Samples of a barely trained model are arbitrary bytes: escape control characters so they
// cannot disturb the terminal (newlines show as \n).
std::string printable(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    if (c == '\n') {
      out += "\\n";
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

}  // namespace

void print_samples(const Context& ctx, model::HybridGPT& gpt, const tokenizer::Tokenizer* tokenizer) {
  std::vector<std::string> prompts = data::sample_prompts();
  if (tokenizer) {
    prompts = {"The capital of France is", "The chemical symbol of gold is",
               "If yesterday was Friday, then tomorrow will be"};
  }
  const infer::TextCodec codec(tokenizer);
  infer::Engine engine(gpt);
  infer::GenerateOptions greedy;
  greedy.max_tokens = 24;
  greedy.sampling.temperature = 0;
  AutocastGuard autocast(ctx.autocast);
  for (const auto& prompt : prompts) {
    auto ids = codec.encode_prompt(prompt);
    const int64_t max_len = gpt->config().sequence_len;  // keep the end of a prompt that does not fit
    if (static_cast<int64_t>(ids.size()) > max_len) ids.erase(ids.begin(), ids.end() - max_len);
    const std::string text = codec.decode(infer::generate(engine, ids, greedy).tokens.front());
    std::cout << "sample: " << printable(prompt) << " ⟶ " << printable(text) << std::endl;
  }
}

}  // namespace hgpt::train
