// test_param_groups.cpp — build_optimizers: every parameter in exactly one optimizer, each in the
// group docs/ARCHITECTURE.md ("Optimizers") gives it, and each AdamW group's learning rate /
// weight decay observed from one step (the first AdamW step moves every element by exactly
// lr·sign(g), after decay).
#include "hgpt/optim/muon.h"
#include "hgpt/strings.h"
#include "hgpt/train/optimizers.h"
#include "hgpt/train/trainer.h"
#include "tests/train/train_test_util.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>

namespace hgpt::testing {
namespace {

// docs/ARCHITECTURE.md ("Optimizers") restated independently of optimizers.cpp: where each
// parameter must go.
enum class Group { Muon, Embedding, Unembedding, MambaSmall, Unknown };
Group expected_group(const std::string& name) {
  if (name == "transformer.wte.weight") return Group::Embedding;
  if (name == "lm_head.weight") return Group::Unembedding;
  for (const char* s : {".mixer.A_log", ".mixer.D", ".mixer.conv1d.weight", ".mixer.conv1d.bias", ".mixer.dt_proj.bias",
                        ".mixer.dt_bias", ".mixer.norm.weight"})
    if (ends_with(name, s)) return Group::MambaSmall;
  for (const char* s : {".attn.c_q.weight", ".attn.c_k.weight", ".attn.c_v.weight", ".attn.c_proj.weight",
                        ".mlp.c_fc.weight", ".mlp.c_proj.weight", ".mixer.in_proj.weight", ".mixer.x_proj.weight",
                        ".mixer.dt_proj.weight", ".mixer.out_proj.weight"})
    if (starts_with(name, "transformer.h.") && ends_with(name, s)) return Group::Muon;
  return Group::Unknown;
}

class ParamGroups : public ::testing::TestWithParam<std::string> {};

// Sharded update (3 ranks): every parameter is owned by exactly one rank, that rank's optimizers
// hold exactly the parameters it owns, in their right groups, and the load is spread.
TEST_P(ParamGroups, ShardedAcrossRanksEachParameterHasOneOwner) {
  const Config config = tiny_config({"depth=4", "aspect_ratio=16", "head_dim=16", "mamba_use_mlp=true"}, GetParam());
  auto gpt = train::build_model(config, at::kCPU);
  constexpr int kRanks = 3;
  std::map<std::string, int> owners;
  std::vector<int64_t> owned_elements(kRanks, 0);
  for (int rank = 0; rank < kRanks; ++rank) {
    auto opt = train::build_optimizers(gpt, config, rank, kRanks);
    ASSERT_EQ(opt.owned_by_rank.size(), static_cast<size_t>(kRanks));
    std::set<const void*> owned;
    for (const auto& t : opt.owned_by_rank[rank]) owned.insert(t.unsafeGetTensorImpl());
    size_t held = 0;
    for (auto* o : opt.all()) {
      for (const auto& p : o->params()) {
        EXPECT_TRUE(owned.count(p.param.unsafeGetTensorImpl()))
            << p.name << " held by rank " << rank << " but not owned";
        EXPECT_EQ(owners.count(p.name), 0u) << p.name << " held by two ranks";
        owners[p.name] = rank;
        owned_elements[rank] += p.param.numel();
        ++held;
        const Group g = expected_group(p.name);
        EXPECT_EQ(g == Group::Muon, o == opt.muon.get()) << p.name;
      }
    }
    EXPECT_EQ(held, owned.size()) << "rank " << rank << " owns parameters no optimizer holds";
  }
  int64_t total = 0;
  for (const auto& item : gpt->named_parameters(true)) {
    EXPECT_EQ(owners.count(item.key()), 1u) << item.key() << " has no owner";
    total += item.value().numel();
  }
  for (int rank = 0; rank < kRanks; ++rank) {
    EXPECT_GT(owned_elements[rank], 0) << "rank " << rank << " owns nothing";
    EXPECT_LT(owned_elements[rank], total * 2 / 3) << "rank " << rank << " owns most of the model";
  }
}

TEST_P(ParamGroups, EveryParameterInExactlyOneOptimizerOfItsGroup) {
  const Config config = tiny_config({"depth=4", "aspect_ratio=16", "head_dim=16", "mamba_use_mlp=true"}, GetParam());
  auto gpt = train::build_model(config, at::kCPU);
  auto opt = train::build_optimizers(gpt, config);

  std::map<std::string, int> seen;  // name → how many optimizers hold it
  std::set<std::string> in_muon, in_adamw;
  for (const auto& p : opt.muon->params()) ++seen[p.name], in_muon.insert(p.name);
  for (const auto& p : opt.adamw->params()) ++seen[p.name], in_adamw.insert(p.name);

  int mamba_small = 0, matrices = 0;
  for (const auto& item : gpt->named_parameters(true)) {
    const std::string& name = item.key();
    EXPECT_EQ(seen[name], 1) << name << " is in " << seen[name] << " optimizers";
    seen.erase(name);
    const Group g = expected_group(name);
    ASSERT_NE(g, Group::Unknown) << "test does not know parameter " << name;
    if (g == Group::Muon) {
      ++matrices;
      EXPECT_TRUE(in_muon.count(name)) << name << " should be in Muon";
      EXPECT_EQ(item.value().dim(), 2) << name;
    } else {
      mamba_small += g == Group::MambaSmall;
      EXPECT_TRUE(in_adamw.count(name)) << name << " should be in AdamW";
    }
  }
  EXPECT_TRUE(seen.empty()) << "optimizers hold a tensor the model does not have: " << seen.begin()->first;
  const int64_t m_layers = config.model.count('M'), m2_layers = config.model.count('2');
  EXPECT_EQ(mamba_small, 5 * m_layers + 6 * m2_layers);
  // T and S: 4 attention + 2 MLP matrices; M: 4 mixer matrices + 2 MLP (mamba_use_mlp); M2:
  // in_proj, out_proj + 2 MLP; attention alone: 4; MLP alone: 2.
  const auto& m = config.model;
  EXPECT_EQ(matrices,
            6 * (m.count('T') + m.count('S')) + 6 * m_layers + 4 * m2_layers + 4 * m.count('*') + 2 * m.count('-'));

  // The optimizers hold the model's own tensors (not copies).
  auto params = gpt->named_parameters(true);
  for (const auto& p : opt.muon->params()) EXPECT_TRUE(p.param.is_same(params[p.name])) << p.name;
  for (const auto& p : opt.adamw->params()) EXPECT_TRUE(p.param.is_same(params[p.name])) << p.name;
}

INSTANTIATE_TEST_SUITE_P(Patterns, ParamGroups, ::testing::Values("TMTM", "TTTT", "MMMM", "2222", "T2M2", "S*-2"),
                         [](const auto& info) { return pattern_test_name(info.param); });

// One AdamW step from fresh state with lr_mult 1: m/(√v + eps)·√(1−β2)/(1−β1) = sign(g) up to
// eps, so p ← p·(1 − lr·wd) − lr·sign(g) exactly reveals each group's lr and weight decay.
TEST(ParamGroupsLr, AdamWGroupsUseScaledLrsAndNoDecayForMambaSmall) {
  const Config config =
      tiny_config({"embedding_lr=0.3", "unembedding_lr=0.005", "mamba_lr=0.007", "weight_decay=0.1", "matrix_lr=0.03"});
  auto gpt = train::build_model(config, at::kCPU);
  auto opt = train::build_optimizers(gpt, config);
  const double scale = std::pow(config.model.model_dim() / 768.0, -0.5);  // = sqrt(12) at width 64

  std::map<std::string, at::Tensor> before, grad;
  at::manual_seed(7);
  for (auto& item : gpt->named_parameters(true)) {
    before[item.key()] = item.value().detach().clone();
    grad[item.key()] = at::randn(item.value().sizes()) + 0.1;  // no exact zeros
    item.value().mutable_grad() = grad[item.key()].clone();
  }
  opt.adamw->step();

  int checked = 0;
  for (const auto& p : opt.adamw->params()) {
    const Group g = expected_group(p.name);
    double lr = 0, wd = 0;
    if (g == Group::Embedding)
      lr = 0.3 * scale, wd = 0.1;
    else if (g == Group::Unembedding)
      lr = 0.005 * scale, wd = 0.1;
    else if (g == Group::MambaSmall)
      lr = 0.007, wd = 0.0;
    else
      FAIL() << p.name << " should not be in AdamW";
    const at::Tensor expected = before[p.name] * (1.0 - lr * wd) - lr * grad[p.name].sign();
    const double err = (p.param.detach() - expected).abs().max().item<double>();
    // fp32 rounding of values up to a few units; a wrong lr or decay is off by orders more.
    const double tol = 2e-6 * std::max(1.0, expected.abs().max().item<double>());
    EXPECT_LT(err, tol) << p.name << ": update does not match lr " << lr << ", weight decay " << wd;
    ++checked;
  }
  EXPECT_EQ(checked, 2 + 5);  // wte, lm_head, and the one M layer's five small tensors
}

// Muon step from a zero buffer: u = (1 − m)(1 + m)·g (Nesterov), Δp = −lr·√max(1, r/c)·NS(u).
// With newton_schulz_dtype "auto" (the dtype newton_schulz_dtype picks for the CPU) and pinned to
// "fp32" and "bf16": each is the update computed by hand in that dtype.
TEST(ParamGroupsLr, MuonUsesMatrixLr) {
  for (auto [key, dtype] :
       {std::pair{"auto", optim::newton_schulz_dtype(at::kCPU)}, {"fp32", at::kFloat}, {"bf16", at::kBFloat16}}) {
    const Config config = tiny_config({"matrix_lr=0.03", std::string("newton_schulz_dtype=") + key});
    auto gpt = train::build_model(config, at::kCPU);
    auto opt = train::build_optimizers(gpt, config);
    opt.muon->set_momentum(0.9);
    std::map<std::string, at::Tensor> before, grad;
    at::manual_seed(8);
    for (const auto& p : opt.muon->params()) {
      before[p.name] = p.param.detach().clone();
      grad[p.name] = at::randn(p.param.sizes());
      at::Tensor param = p.param;
      param.mutable_grad() = grad[p.name].clone();
    }
    opt.muon->step();
    for (const auto& p : opt.muon->params()) {
      const double rows = p.param.size(0), cols = p.param.size(1);
      // u = (1 − m)(1 + m)·g, computed with Muon's own lerps: in bf16 an fp32 rounding difference
      // in u can flip a bf16 rounding.
      const at::Tensor u = grad[p.name].lerp(at::zeros_like(grad[p.name]).lerp(grad[p.name], 0.1), 0.9);
      const at::Tensor ns = optim::zeropower_via_newton_schulz5(u, 5, dtype).to(at::kFloat);
      const at::Tensor expected = before[p.name] - 0.03 * std::sqrt(std::max(1.0, rows / cols)) * ns;
      EXPECT_LT((p.param.detach() - expected).abs().max().item<double>(), 1e-5) << p.name << " (" << key << ")";
    }
  }
}

}  // namespace
}  // namespace hgpt::testing
