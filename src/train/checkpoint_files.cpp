// checkpoint_files.cpp — checkpoint file names (checkpoint_files.h).
#include "hgpt/train/checkpoint_files.h"

#include "hgpt/errors.h"
#include "hgpt/strings.h"

#include <cstdio>
#include <limits>

namespace hgpt::train {

namespace {
constexpr const char* kMetaPrefix = "meta_";
constexpr const char* kMetaSuffix = ".json";
constexpr const char* kModelPrefix = "model_";
constexpr const char* kOptimPrefix = "optim_";

// <prefix><step, 6 digits at least><suffix>
std::string step_file_name(const char* prefix, int64_t step, const std::string& suffix) {
  char digits[32];
  std::snprintf(digits, sizeof(digits), "%06lld", static_cast<long long>(step));
  return prefix + std::string(digits) + suffix;
}
}  // namespace

std::string model_file_name(int64_t step) { return step_file_name(kModelPrefix, step, ".pt"); }
std::string meta_file_name(int64_t step) { return step_file_name(kMetaPrefix, step, kMetaSuffix); }
std::string optim_file_prefix(int64_t step) { return step_file_name(kOptimPrefix, step, "_rank"); }
std::string optim_file_name(int64_t step, int rank) { return optim_file_prefix(step) + std::to_string(rank) + ".pt"; }

std::optional<int64_t> meta_file_step(const std::string& name) {
  const std::string_view prefix = kMetaPrefix, suffix = kMetaSuffix;
  if (name.size() <= prefix.size() + suffix.size() || !starts_with(name, prefix) || !ends_with(name, suffix))
    return std::nullopt;
  const std::string digits = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  int64_t step = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    if (step > (std::numeric_limits<int64_t>::max() - (c - '0')) / 10)
      throw UserError("checkpoint file '" + name + "': the step number does not fit in 64 bits; remove or rename it");
    step = step * 10 + (c - '0');
  }
  return step;
}

bool is_meta_file(const std::string& name) { return starts_with(name, kMetaPrefix); }

bool is_checkpoint_data_file(const std::string& name) {
  return starts_with(name, kModelPrefix) || starts_with(name, kOptimPrefix);
}

}  // namespace hgpt::train
