// evaluate.h — validation loss, bits per byte and task accuracy; greedy sampling; bf16 autocast.
#pragma once

#include "hgpt/data/loader.h"
#include "hgpt/dist/process_group.h"
#include "hgpt/model/gpt.h"

#include <cstdint>
#include <vector>

namespace hgpt::train {

// bf16 autocast over fp32 weights on CUDA (a no-op when disabled), restored on scope exit.
class AutocastGuard {
 public:
  explicit AutocastGuard(bool enabled);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool enabled_, previous_ = false;
};

struct EvalResult {
  double loss = 0.0;   // mean nats per counted target token, over all ranks
  double bpb = -1.0;   // bits per byte (nanochat's definition); < 0 when byte lengths are unknown
  int64_t tokens = 0;  // counted target tokens over all ranks
  data::TaskScore tasks;  // exact-match answers (synthetic corpus), summed over ranks
};

// Runs `steps` validation micro-batches from the loader (which the caller positions), all-reducing
// sums across ranks. bits per byte = Σ token nats / (ln 2 · Σ target byte lengths), byte length of
// a token from `token_bytes` (special tokens 0); empty token_bytes → no bpb.
EvalResult evaluate(model::HybridGPT& model, data::Loader& loader, int64_t steps, const at::Device& device,
                    dist::ProcessGroup& pg, const std::vector<int32_t>& token_bytes, bool autocast);

// Greedy continuation of `prompt` by max_new_tokens (full forward per token, context cropped to
// max_seq_len); returns the new tokens only.
std::vector<uint32_t> greedy_continue(model::HybridGPT& model, const std::vector<uint32_t>& prompt,
                                      int64_t max_new_tokens, const at::Device& device, bool autocast);

}  // namespace hgpt::train
