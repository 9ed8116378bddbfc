// run_dir.h — the run folder <out_dir>/<model_tag>: at the start of a fresh run (resume=false),
// and withdrawing a checkpoint found bad.
//
// A fresh run never mixes with another run's files: a folder that holds a complete checkpoint
// (a meta_*.json) is refused — resume it, choose another model_tag/out_dir, or pass overwrite=true,
// which first deletes that run's checkpoint files (meta files first, so an interruption midway never
// leaves a stale checkpoint that looks complete). metrics.jsonl is restarted by MetricsWriter.
#pragma once

#include <cstdint>
#include <string>

namespace hgpt::train {

// Creates `dir` if needed; throws hgpt::UserError when it holds checkpoints and !overwrite.
void prepare_fresh_run_dir(const std::string& dir, bool overwrite);

// Deletes the files of the checkpoint of `step` (meta first: at once it is no longer complete),
// for a checkpoint found bad right after it was written.
void withdraw_checkpoint(const std::string& dir, int64_t step);

}  // namespace hgpt::train
