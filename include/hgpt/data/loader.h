// loader.h — the data loader: (B, T+1) token rows from the built-in corpus or from token shards,
// in a deterministic order that resumes exactly and splits exactly across data-parallel ranks.
//
// Rows are indexed globally; a row's content depends only on (data source, split, seed, row
// index). `position` p counts *global* micro-steps: on next(), rank r of W reads rows
// [(p·W + r)·B, (p·W + r + 1)·B) and p advances by 1. So 2 ranks × B rows and 1 rank × 2
// micro-steps of B rows read the same rows per optimizer step, and set_position(p) resumes.
//
// Sources:
//  - "synthetic": row i = documents of the built-in corpus (synthetic.h), seeded by (seed, split,
//    i, j) for the j-th document of the row, concatenated (each starts with BOS) and cut at T+1
//    tokens. Train and val use different derived seeds. Answer spans cut by the row end are
//    dropped from the answer marks (their tokens stay as ordinary targets).
//  - a directory of llm.c shards: the split's shards (sorted) form one virtual token stream of N
//    tokens. It holds E = floor((N − 1) / T) whole windows; row i is the window starting at token
//    (i mod E)·T, T+1 tokens long (consecutive windows share one token, as input/target pairs of a
//    flat stream do). Row E starts a new epoch at token 0, so no window wraps around the end; the
//    last (N − 1) mod T tokens' targets are never used. Windows may span shard boundaries.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "hgpt/data/shards.h"
#include "hgpt/data/synthetic.h"

namespace hgpt::data {

struct LoaderSpec {
  std::string data;   // "synthetic" or a directory of .bin shards
  std::string split;  // "train" | "val"
  int64_t batch_size = 0;
  int64_t seq_len = 0;
  int64_t vocab_size = 0;
  uint64_t seed = 42;
  int rank = 0;
  int world_size = 1;
};

struct Batch {
  at::Tensor inputs;   // (B, T) int64, CPU
  at::Tensor targets;  // (B, T) int64, CPU; −1 = ignore
  // Synthetic only (undefined tensors for shards):
  at::Tensor answer_task;  // (B, T) int8: Task of the answer at that *target* position, 0 elsewhere
  at::Tensor answer_span;  // (B, T) int64: id (unique within the batch) of the answer span a target
                           // position belongs to, −1 for none; exact match is scored per span
};

class Loader {
 public:
  // Validates the spec and the data; throws hgpt::UserError naming the file / key on bad input.
  explicit Loader(LoaderSpec spec);

  Batch next();
  int64_t position() const { return position_; }
  void set_position(int64_t p);
  const LoaderSpec& spec() const { return spec_; }
  bool synthetic() const { return synthetic_; }
  // Tokens of the virtual stream (shards) / whole windows per epoch; 0 for synthetic.
  int64_t stream_tokens() const { return stream_tokens_; }
  int64_t windows_per_epoch() const { return windows_per_epoch_; }

  // The T+1 tokens of global row `row` (what next() puts in a batch row); for tests and tools.
  std::vector<int64_t> row_tokens(int64_t row) const;

 private:
  void open_shards();
  void read_stream(int64_t start, int64_t count, int64_t* out) const;

  LoaderSpec spec_;
  bool synthetic_ = false;
  int64_t position_ = 0;
  std::vector<TokenShard> shards_;
  std::vector<int64_t> shard_starts_;  // stream offset of each shard's first token
  int64_t stream_tokens_ = 0;
  int64_t windows_per_epoch_ = 0;
};

// Exact-match counts per task (index = int(Task) − 1).
struct TaskScore {
  std::array<int64_t, kNumTasks> correct{}, total{};
  void add(const TaskScore& other);
  double accuracy(int task) const;  // task *index* 0..kNumTasks-1 (= int(Task) − 1); 0 if no spans
  double accuracy(Task task) const { return accuracy(static_cast<int>(task) - 1); }
};

// A span counts as correct when the prediction (argmax, (B, T) integer) equals the target at every
// position of the span. Empty score when the batch has no answer marks (shards).
TaskScore score_answers(const Batch& batch, const at::Tensor& predictions);

}  // namespace hgpt::data
