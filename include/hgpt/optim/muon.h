// muon.h — Muon (momentum orthogonalised by Newton–Schulz) for 2-D weight matrices.
//
// It follows nanochat's nanochat/muon.py as of nanochat commit 67aaca9 (October 2025; the file is
// unchanged there since nanochat's first commit). Later nanochat commits changed Muon (Polar
// Express coefficients, variance reduction, cautious weight decay); we keep the 67aaca9 form.
#pragma once

#include "hgpt/optim/optimizer.h"

#include <optional>
#include <vector>

namespace hgpt::optim {

// Newton–Schulz quintic iteration towards the orthogonal factor U·Vᵀ of G = U·S·Vᵀ (G 2-D), as
// nanochat's zeropower_via_newtonschulz5:
//   X ← G in `dtype`, transposed when rows > cols;
//   X ← X / (‖X‖_F + 1e-7);
//   repeat `steps` times:  A = X·Xᵀ;  B = b·A + c·A·A;  X = a·X + B·X
//   with (a, b, c) = (3.4445, −4.7750, 2.0315); transposed back at the end. Returns `dtype`.
// Each singular value σ of X maps through φ(σ) = aσ + bσ³ + cσ⁵, so the result is U·φ⁵(S/‖G‖_F)·Vᵀ:
// after 5 steps every normalised σ in [0.003, 1] lands in about [0.68, 1.21] (not exactly 1 — the
// coefficients trade accuracy for a steep slope at 0).
at::Tensor zeropower_via_newton_schulz5(const at::Tensor& G, int steps, at::ScalarType dtype);

// The dtype Muon runs Newton–Schulz in for matrices on `device`: bf16 where the hardware multiplies
// bf16 natively (CUDA GPUs; CPUs with AVX512-BF16 or AMX-BF16), as nanochat does on every device
// (the iteration is stable in bf16 and twice as fast or more); fp32 on other CPUs, where bf16
// matmuls are emulated and slower than fp32. So a CPU run's Muon updates, and its results beyond
// fp32 rounding, depend on whether the CPU has bf16 instructions.
at::ScalarType newton_schulz_dtype(const at::Device& device);

// Update for each 2-D parameter p (rows × cols) with gradient g, lr = base lr × lr_mult (nanochat's
// Muon.step; fp32 momentum buffer):
//   buf ← lerp(buf, g, 1 − momentum)  = momentum·buf + (1 − momentum)·g        "momentum_buffer"
//   u   ← nesterov ? lerp(g, buf, momentum) = (1 − momentum)·g + momentum·buf : buf
//   p   ← p − lr · sqrt(max(1, rows/cols)) · zeropower_via_newton_schulz5(u, ns_steps, dtype)
// with dtype = newton_schulz_dtype(p's device) unless set_newton_schulz_dtype pinned one.
// Unlike nanochat, the gradient itself is left unchanged (nanochat computes u in place in p.grad).
// State keys: "<name>.momentum_buffer", "step".
class Muon : public Optimizer {
 public:
  explicit Muon(std::vector<NamedParam> params, double lr = 0.02, double momentum = 0.95, bool nesterov = true,
                int ns_steps = 5);

  void step() override;

  // The trainer ramps it each step (see muon_momentum in schedule.h).
  void set_momentum(double m);
  double momentum() const { return momentum_; }

  // Newton–Schulz's dtype for every parameter (the config key newton_schulz_dtype); nullopt: by
  // device (newton_schulz_dtype above, the default).
  void set_newton_schulz_dtype(std::optional<at::ScalarType> dtype) { ns_dtype_ = dtype; }

 protected:
  StateDict live_state() const override;

 private:
  std::vector<at::Tensor> momentum_buffers_;  // one per params()[i]
  double lr_, momentum_;
  bool nesterov_;
  int ns_steps_;
  std::optional<at::ScalarType> ns_dtype_;
};

}  // namespace hgpt::optim
