// schedule.cpp — the learning-rate multiplier and Muon momentum ramp (formulas in schedule.h).
#include "hgpt/optim/schedule.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>

namespace hgpt::optim {

namespace {
// Python's round(): to nearest, ties to even (std::nearbyint in the default rounding mode).
int64_t python_round(double x) { return static_cast<int64_t>(std::nearbyint(x)); }
}  // namespace

double lr_multiplier(int64_t step, int64_t num_iterations, double warmup_ratio, double warmdown_ratio,
                     double final_lr_frac) {
  TORCH_CHECK(num_iterations > 0, "lr_multiplier: num_iterations must be > 0");
  TORCH_CHECK(step >= 0, "lr_multiplier: step must be >= 0");
  const int64_t warmup = python_round(warmup_ratio * static_cast<double>(num_iterations));
  const int64_t warmdown = python_round(warmdown_ratio * static_cast<double>(num_iterations));
  if (step < warmup) return static_cast<double>(step + 1) / static_cast<double>(warmup);
  if (step <= num_iterations - warmdown) return 1.0;
  const double progress = static_cast<double>(num_iterations - step) / static_cast<double>(warmdown);
  return progress * 1.0 + (1.0 - progress) * final_lr_frac;
}

double muon_momentum(int64_t step) {
  const double frac = std::min(static_cast<double>(step) / 300.0, 1.0);
  return (1.0 - frac) * 0.85 + frac * 0.95;
}

}  // namespace hgpt::optim
