// metrics.cpp — loss EMA, MFU peak table, JSONL writer.
#include "hgpt/train/metrics.h"

#include "hgpt/errors.h"

#include <cmath>
#include <cstdio>
#include <utility>

namespace hgpt::train {

#ifdef HGPT_WITH_CUDA
std::string cuda_device_name(int index);  // metrics_cuda.cpp
#endif

double LossEma::update(double loss) {
  ema_ = beta_ * ema_ + (1.0 - beta_) * loss;
  ++count_;
  return value();
}

double LossEma::value() const {
  return count_ == 0 ? 0.0 : ema_ / (1.0 - std::pow(beta_, static_cast<double>(count_)));
}

double peak_flops_for(const std::string& name, double configured) {
  if (configured > 0) return configured;
  // Dense bf16 tensor-core peaks from the vendors' data sheets (SXM parts where both exist).
  static const std::pair<const char*, double> table[] = {
      {"H200", 989e12}, {"H100", 989e12}, {"A100", 312e12}, {"L40S", 362e12}, {"RTX 4090", 165e12},
      {"RTX 3090", 71e12}, {"RTX 3080", 59.5e12}, {"RTX 3070", 40.6e12}, {"A10", 125e12}, {"L4", 121e12},
  };
  for (const auto& [key, flops] : table) {
    if (name.find(key) != std::string::npos) return flops;
  }
  return -1.0;
}

std::string device_name(bool cuda, int index) {
#ifdef HGPT_WITH_CUDA
  if (cuda) return cuda_device_name(index);
#endif
  return "cpu";
}

void MetricsWriter::open(const std::string& path) {
  out_.open(path, std::ios::app);
  if (!out_) throw UserError("cannot open '" + path + "' for writing: check out_dir");
}

void MetricsWriter::write(const nlohmann::json& record) {
  if (!out_.is_open()) return;
  out_ << record.dump() << "\n";
  out_.flush();
}

}  // namespace hgpt::train
