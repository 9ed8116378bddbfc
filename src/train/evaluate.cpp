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

EvalResult evaluate(const Context& ctx, model::HybridGPT& model, data::Loader& loader, int64_t steps,
                    const std::vector<int32_t>& token_bytes) {
  const at::Device& device = ctx.device;
  dist::ProcessGroup& pg = ctx.pg;
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
      AutocastGuard guard(ctx.autocast);
      logits = model->forward(inputs);
    }
    const auto losses =
        at::cross_entropy_loss(logits.view({-1, logits.size(-1)}), targets.reshape({-1}), {}, at::Reduction::None, -1);
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

int64_t eval_steps(const Config& config, int world_size) {
  const int64_t tokens_per_step = tokens_per_micro_step(config) * world_size;
  return std::max<int64_t>(1, config.train.eval_tokens / tokens_per_step);
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
  bytes.resize(config.model.vocab_size, 0);  // padding rows never appear as targets
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
