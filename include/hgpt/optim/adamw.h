// adamw.h — AdamW with parameter groups (per-group lr and weight decay), fp32 state.
//
// It follows nanochat's nanochat/adamw.py as of nanochat commit 67aaca9 (October 2025; the file is
// unchanged there since nanochat's first commit). nanochat's commit 4ddc803 (January 2026) later
// moved the bias correction under the square root (denom = sqrt(v / (1 − β2^t)) + eps); we keep
// the 67aaca9 form written below.
#pragma once

#include "hgpt/optim/optimizer.h"

#include <vector>

namespace hgpt::optim {

struct AdamWGroup {
  std::vector<NamedParam> params;
  double lr;
  double weight_decay = 0.0;
};

// Update for each parameter p with gradient g, at step t = 1, 2, … and lr = group lr × lr_mult
// (the form of nanochat's DistAdamW; all arithmetic in fp32):
//   p   ← p · (1 − lr·weight_decay)            decoupled weight decay (skipped when it is 0)
//   m   ← β1·m + (1 − β1)·g                    "exp_avg"
//   v   ← β2·v + (1 − β2)·g²                   "exp_avg_sq"
//   p   ← p − lr·sqrt(1 − β2^t)/(1 − β1^t) · m / (sqrt(v) + eps)
// Note eps is added to sqrt(v) before the bias correction is applied to the step size (as
// nanochat; torch.optim.AdamW adds eps to sqrt(v)/sqrt(1 − β2^t) instead).
// State keys: "<name>.exp_avg", "<name>.exp_avg_sq" (fp32, param's shape and device), "step".
class AdamW : public Optimizer {
 public:
  explicit AdamW(std::vector<AdamWGroup> groups, double beta1 = 0.8, double beta2 = 0.95, double eps = 1e-10);

  void step() override;

 protected:
  StateDict live_state() const override;

 private:
  struct Slot {    // one parameter with its state
    size_t index;  // into params()
    at::Tensor exp_avg;
    at::Tensor exp_avg_sq;
  };
  struct Group {
    double lr;
    double weight_decay;
    std::vector<Slot> slots;
  };

  std::vector<Group> groups_;
  double beta1_, beta2_, eps_;
};

}  // namespace hgpt::optim
