// metrics.cpp — loss EMA, MFU peak table, JSONL writer.
#include "hgpt/train/metrics.h"

#include "hgpt/errors.h"
#include "hgpt/files.h"

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
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

nlohmann::json LossEma::state() const { return {{"ema", ema_}, {"count", count_}}; }

void LossEma::load(const nlohmann::json& state) {
  ema_ = state.at("ema").get<double>();
  count_ = state.at("count").get<int64_t>();
}

double peak_flops_for(const std::string& name, double configured) {
  if (configured > 0) return configured;
  // Dense bf16 tensor-core peaks from the vendors' data sheets (SXM parts where both exist).
  static const std::pair<const char*, double> table[] = {
      {"H200", 989e12},    {"H100", 989e12},      {"A100", 312e12},      {"L40S", 362e12}, {"RTX 4090", 165e12},
      {"RTX 3090", 71e12}, {"RTX 3080", 59.5e12}, {"RTX 3070", 40.6e12}, {"A10", 125e12},  {"L4", 121e12},
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

size_t metrics_prefix_to_keep(const std::string& text, int64_t start_step) {
  size_t keep = 0;
  while (keep < text.size()) {
    const size_t end = text.find('\n', keep);
    if (end == std::string::npos) break;  // a torn last line: no newline yet
    const auto record = nlohmann::json::parse(text.begin() + keep, text.begin() + end, nullptr, false);
    if (!record.is_object() || !record.contains("step") || !record["step"].is_number_integer()) break;
    const int64_t step = record["step"].get<int64_t>();
    const bool training = record.contains("loss");
    if (training ? step > start_step : step >= start_step) break;
    keep = end + 1;
  }
  return keep;
}

MetricsWriter::~MetricsWriter() {
  if (fd_ >= 0) ::close(fd_);
}

void MetricsWriter::open(const std::string& path, int64_t start_step) {
  path_ = path;
  fd_ = open_own_file(path, O_RDWR | O_CREAT | O_APPEND, "the run's metrics file");  // never through a link
  struct stat st {};
  if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) return;  // a character device: nothing to cut
  std::string text;
  char buf[1 << 16];
  for (ssize_t n; (n = ::read(fd_, buf, sizeof(buf))) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw UserError("cannot read '" + path + "': " + std::strerror(errno));
    text.append(buf, static_cast<size_t>(n));
  }
  const size_t keep = metrics_prefix_to_keep(text, start_step);
  if (keep < text.size() && ::ftruncate(fd_, static_cast<off_t>(keep)) != 0)
    throw UserError("cannot cut '" + path + "' back to step " + std::to_string(start_step) + ": " +
                    std::strerror(errno));
}

void MetricsWriter::write(const nlohmann::json& record) {
  if (fd_ < 0) return;
  const std::string line = record.dump() + "\n";
  size_t done = 0;
  while (done < line.size()) {
    const ssize_t n = ::write(fd_, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      throw UserError("cannot write '" + path_ + "' (" + std::strerror(errno) +
                      "); the run stops here, its checkpoints intact: free space, then resume with --resume=true "
                      "(or start it again if it saved none yet)");
    }
    done += static_cast<size_t>(n);
  }
}

}  // namespace hgpt::train
