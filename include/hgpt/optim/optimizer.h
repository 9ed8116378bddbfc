// optimizer.h — the interface shared by AdamW and Muon, and global-norm gradient clipping.
//
// Parameters are ATen leaf tensors (requires_grad) whose .grad() is filled by backward. Every
// optimizer updates them in place under a NoGradGuard. The trainer sets one learning-rate
// multiplier per step (the schedule) and each group's lr is base_lr × multiplier.
// Optimizer state is exposed as named tensors so a checkpoint is a plain dict name → tensor.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace hgpt::optim {

// A parameter and its name in the model's state_dict (e.g. "transformer.h.0.attn.c_q.weight").
struct NamedParam {
  std::string name;
  at::Tensor param;
};

// Optimizer state as (key, tensor) pairs: "<param name>.<state name>" plus "step".
using StateDict = std::vector<std::pair<std::string, at::Tensor>>;

class Optimizer {
 public:
  virtual ~Optimizer() = default;

  // One update of every parameter from its current .grad() (which must be defined).
  virtual void step() = 0;

  void set_lr_mult(double m);
  double lr_mult() const { return lr_mult_; }

  // Number of step() calls so far (restored by load_state_dict).
  int64_t step_count() const { return step_count_; }

  // Sets every parameter's grad to undefined (PyTorch's zero_grad(set_to_none=True)).
  void zero_grad();

  const std::vector<NamedParam>& params() const { return params_; }

  // The live state tensors (aliases, not copies: clone them if you step before saving) plus a
  // fresh int64 scalar "step".
  virtual StateDict state_dict() const;
  // Copies `state` into this optimizer's state. The keys must be exactly those state_dict() gives,
  // with the same shapes; otherwise throws hgpt::UserError (a std::runtime_error) naming the key.
  virtual void load_state_dict(const StateDict& state);

 protected:
  // Checks the params (defined, floating point, unique names and tensors) and keeps them.
  explicit Optimizer(std::vector<NamedParam> params);

  // The per-parameter state tensors, keyed "<param name>.<state name>", in a fixed order.
  virtual StateDict live_state() const = 0;

  // The param's grad, checked to be defined (an internal error names the param otherwise).
  static const at::Tensor& grad_of(const NamedParam& p);

  int64_t step_count_ = 0;

 private:
  std::vector<NamedParam> params_;
  double lr_mult_ = 1.0;
};

// Global-norm gradient clipping over `params` (those whose grad is defined), as PyTorch's
// torch.nn.utils.clip_grad_norm_: total = ‖(‖g_1‖₂, …, ‖g_n‖₂)‖₂; when total > max_norm every grad
// is multiplied by max_norm / (total + 1e-6) (so the new norm is max_norm up to that 1e-6).
// Returns the total norm before clipping (0 when no grad is defined).
double clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm);

}  // namespace hgpt::optim
