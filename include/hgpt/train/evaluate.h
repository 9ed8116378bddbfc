// evaluate.h — validation loss, bits per byte and task accuracy; greedy samples; how both are
// printed and recorded.
#pragma once

#include "hgpt/data/loader.h"
#include "hgpt/model/gpt.h"
#include "hgpt/train/context.h"

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace hgpt::tokenizer {
class Tokenizer;
}

namespace hgpt::train {

struct EvalResult {
  double loss = 0.0;      // mean nats per counted target token, over all ranks
  double bpb = -1.0;      // bits per byte (nanochat's definition); < 0 when byte lengths are unknown
  int64_t tokens = 0;     // counted target tokens over all ranks
  data::TaskScore tasks;  // exact-match answers (synthetic corpus), summed over ranks
};

// How much of the validation split one evaluation reads: `steps` micro-batches, of which the rows
// of global index < `rows` count (every row when rows < 0). eval_tokens is counted in whole
// micro-batches on all ranks (at least one); on token shards no window is read twice: past the
// split's E windows the evaluation stops, and rows past E in its last micro-batch count nothing.
// `note` says how the evaluation differs from eval_tokens ("" when it reads exactly that many).
struct EvalPlan {
  int64_t steps = 1;
  int64_t rows = -1;
  int64_t tokens = 0;  // the target tokens it counts (on shards; the built-in corpus counts all)
  std::string note;
};
EvalPlan plan_evaluation(const Config& config, int world_size, const data::Loader& val_loader);

// Runs the plan's validation micro-batches from the loader (which the caller positions),
// all-reducing sums across ranks. bits per byte = Σ token nats / (ln 2 · Σ target byte lengths),
// byte length of a token from `token_bytes` (special tokens 0, ids the tokenizer lacks −1: a
// target among them is an error on every rank, the data was not made with that tokenizer); empty
// token_bytes → no bpb.
EvalResult evaluate(const Context& ctx, model::HybridGPT& model, data::Loader& loader, const EvalPlan& plan,
                    const std::vector<int32_t>& token_bytes);

// The run's loader for `split` ("train" | "val") on `rank` of `world_size`: training rows follow
// `seed`, validation rows `val_seed`, so runs that differ in seed score on the same tokens.
data::LoaderSpec loader_spec(const Config& config, const std::string& split, int rank, int world_size);

// The config for evaluating at `seq_len` tokens per row instead of max_seq_len (the model runs at
// any length: its rotary tables are computed per forward): the same data, validation rows (on the
// built-in corpus a longer row extends the same documents) and eval_tokens; above the training
// length device_batch_size shrinks in proportion (at least 1), so a micro-batch holds no more
// tokens. At max_seq_len it is `config` itself.
Config config_at_length(const Config& config, int64_t seq_len);

// Byte length of each token id (padded to vocab_size with −1: ids no text maps to) for bits per
// byte: from the tokenizer, or 1 per byte and 0 for <|bos|> on the built-in corpus; empty when
// unknown (shards, no tokenizer).
std::vector<int32_t> token_byte_lengths(const Config& config, const tokenizer::Tokenizer* tokenizer);

// The metrics.jsonl record of an evaluation (val_loss, val_bpb, acc_<task>) and its log text.
nlohmann::json eval_record(const EvalResult& result);
std::string format_eval(const nlohmann::json& record);

// Prints greedy continuations of a few prompts (the inference engine, 24 tokens or up to
// max_seq_len), decoded: the built-in corpus's task prompts (which carry their own <|bos|>), or
// plain-text prompts through the tokenizer when there is one.
void print_samples(const Context& ctx, model::HybridGPT& model, const tokenizer::Tokenizer* tokenizer);

}  // namespace hgpt::train
