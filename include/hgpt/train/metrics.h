// metrics.h — what a run reports: the debiased EMA of the loss, MFU against a peak-FLOP/s table,
// ETA, and the JSONL file <out_dir>/<model_tag>/metrics.jsonl (one object per logged step/eval).
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <string>

namespace hgpt::train {

// nanochat's smoothed loss: ema = β·ema + (1−β)·loss, reported debiased as ema / (1 − β^(n)).
class LossEma {
 public:
  explicit LossEma(double beta = 0.9) : beta_(beta) {}
  double update(double loss);  // returns the debiased value
  double value() const;
  nlohmann::json state() const;  // {"ema", "count"}, as meta files keep it
  void load(const nlohmann::json& state);

 private:
  double beta_, ema_ = 0.0;
  int64_t count_ = 0;
};

// Peak dense bf16 FLOP/s of the device, or <= 0 when unknown (CPU, unlisted GPU): the config's
// peak_flops wins when positive, else a small table keyed on the CUDA device name.
double peak_flops_for(const std::string& device_name, double configured);
// "cpu", or the CUDA device's name ("NVIDIA H200").
std::string device_name(bool cuda, int index);

// metrics.jsonl: JSON objects, one per line, each written with one write() call (a crash tears at
// most the last line). The file always reads as one clean run: opening it for a run that starts at
// `start_step` (0: a fresh run, k: resumed from the checkpoint of step k) first cuts it back to the
// records that run had before step k — training records of steps ≤ k, evaluations of steps < k
// (the resumed run evaluates step k again) — dropping a torn last line and anything after it.
// A failed write throws UserError (disk full: the run stops at once, its last checkpoint intact).
class MetricsWriter {
 public:
  MetricsWriter() = default;
  ~MetricsWriter();
  MetricsWriter(const MetricsWriter&) = delete;
  MetricsWriter& operator=(const MetricsWriter&) = delete;
  void open(const std::string& path, int64_t start_step);  // no-op writer when never opened (non-zero ranks)
  void write(const nlohmann::json& record);

 private:
  std::string path_;
  int fd_ = -1;
};

// The byte length of the part of a metrics.jsonl text that a run starting at `start_step` keeps.
size_t metrics_prefix_to_keep(const std::string& text, int64_t start_step);

}  // namespace hgpt::train
