// loader.cpp — deterministic (B, T+1) rows from the built-in corpus or token shards, and the
// per-task exact-match scoring of answer spans.
#include "hgpt/data/loader.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "hgpt/errors.h"

namespace hgpt::data {
namespace {

constexpr char kSynthetic[] = "synthetic";

// Different derived seeds per split keep train and val documents apart.
constexpr uint64_t kSplitTrain = 0x747261696EULL;  // "train"
constexpr uint64_t kSplitVal = 0x76616CULL;        // "val"

void validate_spec(const LoaderSpec& s) {
  if (s.split != "train" && s.split != "val")
    throw UserError("loader split '" + s.split + "' is not one of: train, val");
  if (s.batch_size < 1) throw UserError("device_batch_size must be >= 1, got " + std::to_string(s.batch_size));
  if (s.seq_len < 1) throw UserError("max_seq_len must be >= 1, got " + std::to_string(s.seq_len));
  if (s.vocab_size < 1) throw UserError("vocab_size must be >= 1, got " + std::to_string(s.vocab_size));
  if (s.world_size < 1 || s.rank < 0 || s.rank >= s.world_size)
    throw UserError("loader rank " + std::to_string(s.rank) + " is outside world size " + std::to_string(s.world_size));
  if (s.data.empty()) throw UserError("data must be \"synthetic\" or a directory of .bin token shards");
}

// One row of the built-in corpus with its answer marks (per token; span ids local to the row).
struct SynthRow {
  std::vector<int64_t> tokens;
  std::vector<int8_t> task;
  std::vector<int32_t> span;
  int32_t num_spans = 0;
};

SynthRow synthetic_row(uint64_t seed, uint64_t split_tag, int64_t row, int64_t length) {
  SynthRow out;
  out.tokens.reserve(length);
  out.task.reserve(length);
  out.span.reserve(length);
  const uint64_t row_seed = mix_seed(mix_seed(seed, split_tag), static_cast<uint64_t>(row));
  for (uint64_t j = 0; static_cast<int64_t>(out.tokens.size()) < length; ++j) {
    const Document doc = generate_document(mix_seed(row_seed, j));
    const int64_t take = std::min<int64_t>(doc.tokens.size(), length - out.tokens.size());
    // A span cut by the row end cannot be scored: its prefix stays as plain text.
    const int32_t cut_span = take < static_cast<int64_t>(doc.tokens.size()) ? doc.span[take] : -1;
    int32_t max_span = -1;
    for (int64_t k = 0; k < take; ++k) {
      out.tokens.push_back(doc.tokens[k]);
      const bool marked = doc.span[k] >= 0 && doc.span[k] != cut_span;
      out.task.push_back(marked ? doc.task[k] : 0);
      out.span.push_back(marked ? out.num_spans + doc.span[k] : -1);
      if (marked) max_span = std::max(max_span, doc.span[k]);
    }
    out.num_spans += max_span + 1;
  }
  return out;
}

uint64_t split_tag(const LoaderSpec& s) { return s.split == "val" ? kSplitVal : kSplitTrain; }

}  // namespace

// ---------------------------------------------------------------------------------------------
Loader::Loader(LoaderSpec spec) : spec_(std::move(spec)) {
  validate_spec(spec_);
  synthetic_ = spec_.data == kSynthetic;
  if (synthetic_) {
    if (spec_.vocab_size < kByteVocab)
      throw UserError("data \"synthetic\" is byte-level and needs vocab_size >= " + std::to_string(kByteVocab) +
                      " (256 bytes + <|bos|>), got " + std::to_string(spec_.vocab_size));
  } else {
    open_shards();
  }
}

void Loader::open_shards() {
  // list_shards / TokenShard throw UserError naming the directory or file (missing, bad magic,
  // bad version, size not matching the header).
  for (const std::string& path : list_shards(spec_.data, spec_.split == "val")) {
    TokenShard shard(path);
    // uint16 shards cannot exceed a vocab of 65536+; skip their scan then.
    const bool needs_scan = shard.token_bytes() > 2 || spec_.vocab_size < 65536;
    if (needs_scan && static_cast<int64_t>(shard.max_token()) >= spec_.vocab_size)
      throw UserError("token shard " + path + " holds token id " + std::to_string(shard.max_token()) +
                      " >= vocab_size " + std::to_string(spec_.vocab_size));
    shard_starts_.push_back(stream_tokens_);
    stream_tokens_ += shard.size();
    shards_.push_back(std::move(shard));
  }
  windows_per_epoch_ = (stream_tokens_ - 1) / spec_.seq_len;
  if (windows_per_epoch_ < 1)
    throw UserError("the " + spec_.split + " shards in " + spec_.data + " hold " + std::to_string(stream_tokens_) +
                    " tokens, fewer than max_seq_len + 1 = " + std::to_string(spec_.seq_len + 1));
}

void Loader::read_stream(int64_t start, int64_t count, int64_t* out) const {
  // The shard holding `start`: the last one whose first token is at or before it.
  size_t s = std::upper_bound(shard_starts_.begin(), shard_starts_.end(), start) - shard_starts_.begin() - 1;
  while (count > 0) {
    TORCH_CHECK(s < shards_.size(), "read past the end of the token stream");
    const int64_t offset = start - shard_starts_[s];
    const int64_t n = std::min(count, shards_[s].size() - offset);
    shards_[s].read(offset, n, out);
    out += n;
    start += n;
    count -= n;
    ++s;
  }
}

std::vector<int64_t> Loader::row_tokens(int64_t row) const {
  const int64_t length = spec_.seq_len + 1;
  if (synthetic_) return synthetic_row(spec_.seed, split_tag(spec_), row, length).tokens;
  std::vector<int64_t> out(length);
  read_stream((row % windows_per_epoch_) * spec_.seq_len, length, out.data());
  return out;
}

void Loader::set_position(int64_t p) {
  if (p < 0) throw UserError("loader position must be >= 0, got " + std::to_string(p));
  position_ = p;
}

Batch Loader::next() {
  const int64_t B = spec_.batch_size, T = spec_.seq_len;
  const int64_t first_row = (position_ * spec_.world_size + spec_.rank) * B;
  ++position_;

  Batch batch;
  batch.inputs = at::empty({B, T}, at::kLong);
  batch.targets = at::empty({B, T}, at::kLong);
  int64_t* inputs = batch.inputs.data_ptr<int64_t>();
  int64_t* targets = batch.targets.data_ptr<int64_t>();
  if (!synthetic_) {
    for (int64_t b = 0; b < B; ++b) {
      const std::vector<int64_t> row = row_tokens(first_row + b);
      std::copy(row.begin(), row.end() - 1, inputs + b * T);
      std::copy(row.begin() + 1, row.end(), targets + b * T);
    }
    return batch;
  }

  batch.answer_task = at::empty({B, T}, at::kChar);
  batch.answer_span = at::empty({B, T}, at::kLong);
  int8_t* task = batch.answer_task.data_ptr<int8_t>();
  int64_t* span = batch.answer_span.data_ptr<int64_t>();
  int64_t span_offset = 0;  // makes span ids unique within the batch
  for (int64_t b = 0; b < B; ++b) {
    const SynthRow row = synthetic_row(spec_.seed, split_tag(spec_), first_row + b, T + 1);
    for (int64_t t = 0; t < T; ++t) {
      inputs[b * T + t] = row.tokens[t];
      targets[b * T + t] = row.tokens[t + 1];
      task[b * T + t] = row.task[t + 1];  // marks follow the *target* token
      span[b * T + t] = row.span[t + 1] >= 0 ? span_offset + row.span[t + 1] : -1;
    }
    span_offset += row.num_spans;
  }
  return batch;
}

// ---------------------------------------------------------------------------------------------
void TaskScore::add(const TaskScore& other) {
  for (int k = 0; k < kNumTasks; ++k) {
    correct[k] += other.correct[k];
    total[k] += other.total[k];
  }
}

double TaskScore::accuracy(int task) const {
  TORCH_CHECK(task >= 0 && task < kNumTasks, "task index out of range: ", task);
  return total[task] > 0 ? static_cast<double>(correct[task]) / static_cast<double>(total[task]) : 0.0;
}

TaskScore score_answers(const Batch& batch, const at::Tensor& predictions) {
  TaskScore score;
  if (!batch.answer_span.defined()) return score;
  TORCH_CHECK(predictions.sizes() == batch.targets.sizes(), "predictions shape ", predictions.sizes(),
              " does not match targets ", batch.targets.sizes());
  const at::Tensor pred = predictions.to(at::kCPU, at::kLong).contiguous();
  const at::Tensor tgt = batch.targets.contiguous();
  const at::Tensor spans = batch.answer_span.contiguous();
  const at::Tensor tasks = batch.answer_task.contiguous();
  const int64_t* p = pred.data_ptr<int64_t>();
  const int64_t* y = tgt.data_ptr<int64_t>();
  const int64_t* s = spans.data_ptr<int64_t>();
  const int8_t* k = tasks.data_ptr<int8_t>();
  const int64_t n = pred.numel();

  int64_t num_spans = 0;
  for (int64_t i = 0; i < n; ++i) num_spans = std::max(num_spans, s[i] + 1);
  std::vector<int8_t> span_task(num_spans, 0), span_ok(num_spans, 1);
  for (int64_t i = 0; i < n; ++i) {
    if (s[i] < 0) continue;
    span_task[s[i]] = k[i];
    if (p[i] != y[i]) span_ok[s[i]] = 0;
  }
  for (int64_t id = 0; id < num_spans; ++id) {
    const int t = span_task[id] - 1;
    if (t < 0 || t >= kNumTasks) continue;  // an id not present in this batch
    ++score.total[t];
    score.correct[t] += span_ok[id];
  }
  return score;
}

}  // namespace hgpt::data
