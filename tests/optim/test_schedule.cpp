// test_schedule.cpp — lr multiplier and Muon momentum ramp against values worked out by hand from
// nanochat's get_lr_multiplier / get_muon_momentum.
#include "hgpt/optim/schedule.h"

#include <gtest/gtest.h>

namespace hgpt::optim {
namespace {

constexpr double kTol = 1e-12;

TEST(LrMultiplier, WarmupFlatWarmdownWithFinalFrac) {
  // N = 100: warmup round(0.1·100) = 10 steps, warmdown round(0.2·100) = 20 steps, to 0.1.
  auto f = [](int64_t s) { return lr_multiplier(s, 100, 0.1, 0.2, 0.1); };
  EXPECT_NEAR(f(0), 0.1, kTol);   // (0 + 1) / 10
  EXPECT_NEAR(f(4), 0.5, kTol);   // (4 + 1) / 10
  EXPECT_NEAR(f(9), 1.0, kTol);   // last warmup step reaches 1
  EXPECT_NEAR(f(10), 1.0, kTol);  // flat
  EXPECT_NEAR(f(50), 1.0, kTol);
  EXPECT_NEAR(f(80), 1.0, kTol);    // 80 <= N − warmdown: still flat
  EXPECT_NEAR(f(81), 0.955, kTol);  // p = 19/20: 0.95 + 0.05·0.1
  EXPECT_NEAR(f(90), 0.55, kTol);   // p = 1/2: 0.5 + 0.5·0.1
  EXPECT_NEAR(f(99), 0.145, kTol);  // last training step, p = 1/20: 0.05 + 0.95·0.1
  EXPECT_NEAR(f(100), 0.1, kTol);   // step N: exactly final_lr_frac
}

TEST(LrMultiplier, NoWarmupDecaysToZero) {
  auto f = [](int64_t s) { return lr_multiplier(s, 100, 0.0, 0.2, 0.0); };
  EXPECT_NEAR(f(0), 1.0, kTol);  // no warmup: full lr from the first step
  EXPECT_NEAR(f(80), 1.0, kTol);
  EXPECT_NEAR(f(85), 0.75, kTol);  // 15/20
  EXPECT_NEAR(f(99), 0.05, kTol);  // 1/20
  EXPECT_NEAR(f(100), 0.0, kTol);
}

TEST(LrMultiplier, NoWarmdownStaysFlat) {
  for (int64_t s : {0, 7, 19, 20}) EXPECT_NEAR(lr_multiplier(s, 20, 0.0, 0.0, 0.0), 1.0, kTol);
}

TEST(LrMultiplier, RoundsStepCountsHalfToEvenLikePython) {
  // warmdown = round(0.5·5) = round(2.5) = 2 in Python (half-up would give 3, i.e. 2/3 at step 3).
  EXPECT_NEAR(lr_multiplier(3, 5, 0.0, 0.5, 0.0), 1.0, kTol);
  EXPECT_NEAR(lr_multiplier(4, 5, 0.0, 0.5, 0.0), 0.5, kTol);
  // warmup = round(0.5·7) = round(3.5) = 4.
  EXPECT_NEAR(lr_multiplier(0, 7, 0.5, 0.0, 0.0), 0.25, kTol);
}

TEST(MuonMomentum, RampsLinearlyOverFirst300Steps) {
  EXPECT_NEAR(muon_momentum(0), 0.85, kTol);
  EXPECT_NEAR(muon_momentum(150), 0.90, kTol);
  EXPECT_NEAR(muon_momentum(300), 0.95, kTol);
  EXPECT_NEAR(muon_momentum(1000), 0.95, kTol);
}

}  // namespace
}  // namespace hgpt::optim
