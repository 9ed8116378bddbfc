// summary.h — what `base_train --dry-run` prints: sizes, FLOPs, batch arithmetic, horizon and a
// memory estimate, all derived from the config without allocating the model.
#pragma once

#include "hgpt/config.h"

#include <nlohmann/json_fwd.hpp>

namespace hgpt::train {

// The number of optimizer steps: num_iterations if set, else target_flops / (flops per token ·
// total_batch_size), else target_param_data_ratio · parameters / total_batch_size (nanochat).
int64_t resolve_num_iterations(const Config& config);

// One JSON object: parameters, parameters_by_block {T, M}, flops_per_token, tokens_per_step,
// grad_accum_steps, num_iterations, estimated_memory_bytes (+ its parts), training_tokens, ...
nlohmann::json run_summary(const Config& config, int world_size, bool cuda);

// Refuses (UserError) a config whose model state cannot fit this machine's physical memory: the
// fp32 weights (built on the CPU first, also for CUDA runs) and, on CPU, their gradients and
// optimizer buffers. Activations are left out: the estimate of them is only an upper bound.
void check_fits_in_memory(const Config& config, bool cuda);

// The same summary as readable lines.
std::string format_summary(const nlohmann::json& summary);

// <run_dir>/run.json, written by rank 0 when a run starts (again when it resumes): the summary plus
// the resolved config, the device name and, for a run with a tokenizer, its tokenizer_fingerprint,
// so that scripts/report.py can describe a run that is still in progress or never reached a
// checkpoint, and sample, evaluate and resume can tell the tokenizer it was trained with.
void write_run_record(const std::string& run_dir, const nlohmann::json& summary, const Config& config,
                      const std::string& device);
// The tokenizer_fingerprint a run's run.json recorded; "" when there is none (no tokenizer, no
// run.json, or a run from before it was recorded).
std::string recorded_tokenizer_fingerprint(const std::string& run_dir);

}  // namespace hgpt::train
