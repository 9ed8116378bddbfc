// optimizers.cpp — parameter groups, owner ranks and the owners' broadcast (optimizers.h).
#include "hgpt/train/optimizers.h"

#include "hgpt/config.h"
#include "hgpt/dist/process_group.h"
#include "hgpt/strings.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <string>
#include <tuple>

namespace hgpt::train {

std::vector<optim::Optimizer*> Optimizers::all() const { return {muon.get(), adamw.get()}; }

namespace {
// Full names of the parameters each block calls small (BlockImpl::small_parameters).
std::set<std::string> small_parameter_names(const model::HybridGPT& gpt) {
  std::set<std::string> names;
  const auto blocks = gpt->blocks();
  for (size_t i = 0; i < blocks.size(); ++i) {
    for (const auto& name : blocks[i]->small_parameters()) {
      names.insert("transformer.h." + std::to_string(i) + "." + name);
    }
  }
  return names;
}
}  // namespace

Optimizers build_optimizers(model::HybridGPT& gpt, const Config& config, int rank, int world_size) {
  const auto& t = config.train;
  const double dim_scale = std::pow(static_cast<double>(config.model.model_dim()) / 768.0, -0.5);
  Optimizers o;
  o.owned_by_rank.resize(world_size);
  std::vector<int64_t> load(world_size, 0);
  std::vector<optim::NamedParam> matrices, embedding, unembedding, mamba_small;
  const std::set<std::string> small = small_parameter_names(gpt);
  for (const auto& item : gpt->named_parameters(true)) {
    const std::string& name = item.key();
    optim::NamedParam p{name, item.value()};
    // Owner: the least-loaded rank so far (by elements), lowest rank on ties.
    const int owner = static_cast<int>(std::min_element(load.begin(), load.end()) - load.begin());
    load[owner] += p.param.numel();
    o.owned_by_rank[owner].push_back(p.param);
    std::vector<optim::NamedParam>* group = nullptr;
    if (name == "transformer.wte.weight")
      group = &embedding;
    else if (name == "lm_head.weight")
      group = &unembedding;
    else if (small.count(name))
      group = &mamba_small;
    else if (starts_with(name, "transformer.h.") && p.param.dim() == 2)
      group = &matrices;
    else
      TORCH_CHECK(false, "parameter '", name, "' has no optimizer group");
    if (owner == rank) group->push_back(p);
  }
  o.muon = std::make_unique<optim::Muon>(matrices, t.matrix_lr, 0.95);
  if (t.newton_schulz_dtype != NewtonSchulzDtype::Auto) {
    o.muon->set_newton_schulz_dtype(t.newton_schulz_dtype == NewtonSchulzDtype::BF16 ? at::kBFloat16 : at::kFloat);
  }
  std::vector<optim::AdamWGroup> groups;
  for (auto [params, lr, decay] : {std::tuple{&embedding, t.embedding_lr * dim_scale, t.weight_decay},
                                   {&unembedding, t.unembedding_lr * dim_scale, t.weight_decay},
                                   {&mamba_small, t.mamba_lr, 0.0}}) {
    if (!params->empty()) groups.push_back({*params, lr, decay});
  }
  o.adamw = std::make_unique<optim::AdamW>(groups, 0.8, 0.95, 1e-10);
  return o;
}

void sync_params(const Optimizers& optimizers, dist::ProcessGroup& pg) {
  at::NoGradGuard no_grad;
  for (int owner = 0; owner < static_cast<int>(optimizers.owned_by_rank.size()); ++owner) {
    const auto& params = optimizers.owned_by_rank[owner];
    if (params.empty()) continue;
    std::vector<at::Tensor> flat_views;
    for (const auto& p : params) flat_views.push_back(p.reshape({-1}));
    at::Tensor flat = at::cat(flat_views);  // the owner's values; overwritten on the others
    pg.broadcast_(flat, owner);
    if (pg.rank() == owner) continue;
    int64_t offset = 0;
    for (const auto& p : params) {
      p.copy_(flat.narrow(0, offset, p.numel()).view_as(p));
      offset += p.numel();
    }
  }
}

}  // namespace hgpt::train
