// trainer.h — nanochat's base_train loop in C++: build model + optimizers + loaders from the
// config, train with grad accumulation, evaluate, sample, log, checkpoint, resume.
#pragma once

#include "hgpt/config.h"
#include "hgpt/data/loader.h"
#include "hgpt/dist/process_group.h"
#include "hgpt/model/gpt.h"
#include "hgpt/optim/adamw.h"
#include "hgpt/optim/muon.h"

#include <memory>
#include <vector>

namespace hgpt::train {

// Muon for the 2-D matrices inside blocks (attention, MLP, in_proj, x_proj, dt_proj.weight,
// out_proj); AdamW for wte (embedding_lr), lm_head (unembedding_lr), both × (model_dim/768)^-0.5,
// with weight_decay, and for Mamba's A_log, D, conv1d and dt_proj.bias (mamba_lr, no decay).
// Every parameter lands in exactly one group (checked).
//
// With several ranks the update is sharded (ZeRO stage 1): each parameter has one owner rank
// (greedy by size, the same on every rank), a rank's optimizers hold only the parameters it owns
// and their state, and after the step sync_params() broadcasts each owner's updated parameters.
// Gradients are still averaged on every rank first, so the result equals one process's update.
struct Optimizers {
  std::unique_ptr<optim::Muon> muon;
  std::unique_ptr<optim::AdamW> adamw;
  std::vector<std::vector<at::Tensor>> owned_by_rank;  // parameters each rank updates, in model order
  std::vector<optim::Optimizer*> all() const;
};
Optimizers build_optimizers(model::HybridGPT& model, const Config& config, int rank = 0, int world_size = 1);
// Every rank ends with every owner's updated parameters (one broadcast per rank that owns some).
void sync_params(const Optimizers& optimizers, dist::ProcessGroup& pg);

// "auto" → CUDA (device local_rank) when a GPU is present, else CPU. "cuda" without a GPU is a
// UserError.
at::Device resolve_device(const std::string& device, int local_rank);

// Builds and initialises the model from the seed (identical on every rank).
model::HybridGPT build_model(const Config& config, const at::Device& device);

struct StepResult {
  double loss = 0.0;       // mean training loss of the step, averaged over ranks
  double grad_norm = 0.0;  // global gradient norm before clipping
};
// One optimizer step: `accum` micro-batches (loss / accum backward each), gradients averaged
// across ranks, clipped to grad_clip (> 0), then each optimizer steps, the parameters are synced
// across ranks and all gradients are cleared.
// The caller sets learning-rate multipliers and momentum beforehand.
StepResult train_step(model::HybridGPT& model, Optimizers& optimizers, data::Loader& loader, int64_t accum,
                      const at::Device& device, dist::ProcessGroup& pg, double grad_clip, bool autocast);

// The whole run. Returns the process exit code (0; 128+signal after a clean interrupt).
int run_training(const Config& config, dist::ProcessGroup& pg, int local_rank);

}  // namespace hgpt::train
