// run_dir.h — the run folder <out_dir>/<model_tag>: one writer at a time, the start of a fresh
// run (resume=false), and withdrawing a checkpoint found bad.
//
// One writer: rank 0 of a training run holds an exclusive flock(2) on <dir>/run.lock for the life
// of the run, before it deletes, reads or writes anything there. A second base_train into the same
// folder (fresh, resumed, or with overwrite=true; an orphan a launcher left behind; would-be ranks
// that failed to find each other and each run alone) stops with an error naming the PID and host
// in the lock file. The kernel drops the lock when its process dies, so kill -9 leaves no stale
// lock: the file stays, and the next run takes it. evaluate and sample only read, and take none.
//
// A fresh run never mixes with another run's files: a folder that holds a complete checkpoint
// (a meta_*.json) is refused — resume it, choose another model_tag/out_dir, or pass overwrite=true,
// which first deletes that run's checkpoint files (meta files first, so an interruption midway never
// leaves a stale checkpoint that looks complete). metrics.jsonl is restarted by MetricsWriter.
#pragma once

#include <cstdint>
#include <string>

namespace hgpt::train {

// Holds the run folder's lock (creating the folder if needed) until destroyed; throws
// hgpt::UserError naming the holder when another process has it.
class RunLock {
 public:
  explicit RunLock(const std::string& dir);
  ~RunLock();
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

 private:
  int fd_ = -1;
};

// Creates `dir` if needed; throws hgpt::UserError when it holds checkpoints and !overwrite.
void prepare_fresh_run_dir(const std::string& dir, bool overwrite);

// Deletes the files of the checkpoint of `step` (meta first: at once it is no longer complete),
// for a checkpoint found bad right after it was written.
void withdraw_checkpoint(const std::string& dir, int64_t step);

}  // namespace hgpt::train
