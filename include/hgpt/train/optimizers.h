// optimizers.h — which optimizer updates each parameter, and which rank owns it (ZeRO stage 1).
//
// Muon for the 2-D matrices inside blocks (attention, MLP, in_proj, x_proj, dt_proj.weight,
// out_proj); AdamW for wte (embedding_lr), lm_head (unembedding_lr), both × (model_dim/768)^-0.5,
// with weight_decay, and for Mamba's A_log, D, conv1d and dt_proj.bias (mamba_lr, no decay).
// Every parameter lands in exactly one group (checked).
//
// With several ranks the update is sharded (ZeRO stage 1): each parameter has one owner rank
// (greedy by size, the same on every rank), a rank's optimizers hold only the parameters it owns
// and their state, and after the step sync_params() broadcasts each owner's updated parameters.
// Gradients are still averaged on every rank first, so the result equals one process's update.
#pragma once

#include "hgpt/config.h"
#include "hgpt/dist/process_group.h"
#include "hgpt/model/gpt.h"
#include "hgpt/optim/adamw.h"
#include "hgpt/optim/muon.h"

#include <memory>
#include <vector>

namespace hgpt::train {

struct Optimizers {
  std::unique_ptr<optim::Muon> muon;
  std::unique_ptr<optim::AdamW> adamw;
  std::vector<std::vector<at::Tensor>> owned_by_rank;  // parameters each rank updates, in model order
  std::vector<optim::Optimizer*> all() const;
};
Optimizers build_optimizers(model::HybridGPT& model, const Config& config, int rank = 0, int world_size = 1);
// Every rank ends with every owner's updated parameters (one broadcast per rank that owns some).
void sync_params(const Optimizers& optimizers, dist::ProcessGroup& pg);

}  // namespace hgpt::train
