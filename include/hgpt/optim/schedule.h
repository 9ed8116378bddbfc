// schedule.h — the learning-rate multiplier and the Muon momentum ramp (nanochat's base_train).
#pragma once

#include <cstdint>

namespace hgpt::optim {

// nanochat's get_lr_multiplier(it), for step = 0 … num_iterations:
//   warmup   = round(warmup_ratio · N),  warmdown = round(warmdown_ratio · N)
//              (round half to even, as Python's round)
//   step <  warmup            → (step + 1) / warmup
//   step <= N − warmdown      → 1
//   otherwise                 → p + (1 − p)·final_lr_frac,  p = (N − step) / warmdown
double lr_multiplier(int64_t step, int64_t num_iterations, double warmup_ratio, double warmdown_ratio,
                     double final_lr_frac);

// nanochat's get_muon_momentum(it): f = min(step / 300, 1); (1 − f)·0.85 + f·0.95.
double muon_momentum(int64_t step);

}  // namespace hgpt::optim
