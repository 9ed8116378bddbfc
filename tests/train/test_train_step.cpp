// test_train_step.cpp — train_step in process: gradient accumulation equals one big batch, a tiny
// model memorises one batch, a tiny hybrid learns on the built-in corpus, and the run's loaders
// draw validation rows that do not move with the seed.
#include "hgpt/data/loader.h"
#include "hgpt/dist/process_group.h"
#include "hgpt/optim/schedule.h"
#include "hgpt/train/evaluate.h"
#include "hgpt/train/optimizers.h"
#include "hgpt/train/trainer.h"
#include "tests/train/train_test_util.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <memory>

namespace hgpt::testing {
namespace {

using GradMap = std::map<std::string, at::Tensor>;

// Optimizers that only record the gradients they are handed (so train_step's accumulated,
// averaged gradients can be read after it) and leave the parameters alone.
class RecordingMuon : public optim::Muon {
 public:
  RecordingMuon(std::vector<optim::NamedParam> p, GradMap* out) : optim::Muon(std::move(p)), out_(out) {}
  void step() override {
    for (const auto& p : params()) (*out_)[p.name] = p.param.grad().clone();
  }

 private:
  GradMap* out_;
};

class RecordingAdamW : public optim::AdamW {
 public:
  RecordingAdamW(std::vector<optim::NamedParam> p, GradMap* out)
      : optim::AdamW({optim::AdamWGroup{std::move(p), 0.0, 0.0}}), out_(out) {}
  void step() override {
    for (const auto& p : params()) (*out_)[p.name] = p.param.grad().clone();
  }

 private:
  GradMap* out_;
};

std::shared_ptr<dist::ProcessGroup> single_process_group() {
  return dist::ProcessGroup::create(dist::DistEnv{}, /*cuda=*/false);
}

data::Loader synthetic_loader(const Config& config, int64_t batch) {
  return data::Loader(data::LoaderSpec{"synthetic", "train", batch, config.model.sequence_len, config.model.vocab_size,
                                       config.train.seed, 0, 1});
}

// Model from build_model, then every weight nudged by noise: at init lm_head and the output
// projections are zero, which would make most gradients zero and the comparison vacuous.
model::HybridGPT perturbed_model(const Config& config) {
  auto gpt = train::build_model(config, at::kCPU);
  at::NoGradGuard no_grad;
  at::manual_seed(1234);
  for (auto& p : gpt->parameters()) p.add_(at::randn(p.sizes()) * 0.05);
  return gpt;
}

struct AccumRun {
  GradMap grads;
  double loss = 0;
  int64_t position = 0;
};

AccumRun grads_of_step(const Config& config, int64_t micro_batch, int64_t accum) {
  auto gpt = perturbed_model(config);
  auto real = train::build_optimizers(gpt, config);
  AccumRun run;
  train::Optimizers rec;
  rec.muon = std::make_unique<RecordingMuon>(real.muon->params(), &run.grads);
  rec.adamw = std::make_unique<RecordingAdamW>(real.adamw->params(), &run.grads);
  auto loader = synthetic_loader(config, micro_batch);
  auto pg = single_process_group();
  const train::Context ctx{config, *pg, at::kCPU, /*autocast=*/false};
  run.loss = train::train_step(ctx, gpt, rec, loader, accum).loss;
  run.position = loader.position();
  for (auto& p : gpt->parameters()) EXPECT_FALSE(p.grad().defined()) << "train_step must clear the grads";
  return run;
}

TEST(TrainStep, GradAccumulationMatchesOneBigBatch) {
  // No clipping: the step's gradients are compared as accumulated.
  const Config config = tiny_config({"max_seq_len=64", "total_batch_size=256", "grad_clip=0"}, "TM");
  // Every synthetic target is counted (no −1), so the mean over 8 rows is the mean of 4 means of 2.
  auto probe = synthetic_loader(config, 8).next();
  ASSERT_EQ(probe.targets.lt(0).sum().item<int64_t>(), 0);

  const AccumRun big = grads_of_step(config, /*micro_batch=*/8, /*accum=*/1);
  const AccumRun small = grads_of_step(config, /*micro_batch=*/2, /*accum=*/4);
  EXPECT_EQ(big.position, 1);
  EXPECT_EQ(small.position, 4);
  EXPECT_NEAR(big.loss, small.loss, 1e-6);

  ASSERT_EQ(big.grads.size(), small.grads.size());
  auto model = train::build_model(config, at::kCPU);
  EXPECT_EQ(big.grads.size(), model->parameters().size());
  for (const auto& [name, g] : big.grads) {
    ASSERT_TRUE(small.grads.count(name)) << name;
    EXPECT_GT(g.abs().max().item<double>(), 0.0) << name << " has a zero gradient: the comparison says nothing";
    const double diff = (g - small.grads.at(name)).abs().max().item<double>();
    EXPECT_LE(diff, 1e-6) << name;
  }
}

// Same batch every step (loader rewound) with the real optimizers and schedule pieces.
TEST(TrainStep, TinyModelOverfitsOneBatch) {
  const Config config = tiny_config({"max_seq_len=32", "device_batch_size=2", "total_batch_size=64"}, "TM");
  auto gpt = train::build_model(config, at::kCPU);
  auto opt = train::build_optimizers(gpt, config);
  auto loader = synthetic_loader(config, 2);
  auto pg = single_process_group();
  const train::Context ctx{config, *pg, at::kCPU, /*autocast=*/false};
  double first = 0, loss = 0;
  int steps = 0;
  for (; steps < 300; ++steps) {
    loader.set_position(0);
    opt.muon->set_momentum(optim::muon_momentum(steps));
    loss = train::train_step(ctx, gpt, opt, loader, 1).loss;
    if (steps == 0) first = loss;
    if (loss < 0.05) break;
  }
  EXPECT_GT(first, 5.0);  // ln(257) ≈ 5.55 at init
  std::printf("overfit: loss %f after %d steps\n", loss, steps + 1);
  EXPECT_LT(loss, 0.05) << "after " << steps << " steps on one batch";
}

TEST(TrainStep, TinyHybridLossFallsOnBuiltInCorpus) {
  const Config config = tiny_config({"max_seq_len=32", "device_batch_size=4", "total_batch_size=128"}, "TM");
  auto gpt = train::build_model(config, at::kCPU);
  auto opt = train::build_optimizers(gpt, config);
  auto loader = synthetic_loader(config, 4);
  auto pg = single_process_group();
  const train::Context ctx{config, *pg, at::kCPU, /*autocast=*/false};  // grad_clip 1.0 (the default)
  const int steps = 20;
  std::vector<double> losses;
  for (int s = 0; s < steps; ++s) {
    const double m = optim::lr_multiplier(s, steps, 0.0, 0.2, 0.0);
    for (auto* o : opt.all()) o->set_lr_mult(m);
    opt.muon->set_momentum(optim::muon_momentum(s));
    losses.push_back(train::train_step(ctx, gpt, opt, loader, 1).loss);
  }
  double tail = 0;
  for (int s = steps - 5; s < steps; ++s) tail += losses[s] / 5;
  std::printf("loss-falls: first %f, last %f\n", losses[0], losses.back());
  EXPECT_LT(tail, 0.8 * losses[0]) << "first " << losses[0] << ", mean of last 5 " << tail;
}

// Two runs that differ only in `seed` score on the same validation tokens (their training rows
// differ), and `val_seed` is what moves the validation rows.
TEST(TrainStep, ValidationRowsFollowValSeedNotSeed) {
  auto first_batch = [](const Config& config, const std::string& split) {
    return data::Loader(train::loader_spec(config, split, 0, 1)).next().inputs;
  };
  const Config seed1 = tiny_config({"seed=1"}), seed2 = tiny_config({"seed=2"});
  const Config val_seed7 = tiny_config({"seed=1", "val_seed=7"});
  EXPECT_TRUE(at::equal(first_batch(seed1, "val"), first_batch(seed2, "val")));
  EXPECT_FALSE(at::equal(first_batch(seed1, "train"), first_batch(seed2, "train")));
  EXPECT_FALSE(at::equal(first_batch(seed1, "val"), first_batch(val_seed7, "val")));
  EXPECT_TRUE(at::equal(first_batch(seed1, "train"), first_batch(val_seed7, "train")));
}

}  // namespace
}  // namespace hgpt::testing
