// test_generate.cpp — next-token sampling (greedy, temperature, top-k, top-p, seeds) and the
// generation loop (determinism, stop token, length limits, refusals).
#include "hgpt/infer/generate.h"

#include "hgpt/errors.h"
#include "tests/model/model_test_util.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <set>
#include <vector>

namespace hgpt::infer {
namespace {

using model::test::make_model;
using model::test::perturb_zero_init;
using model::test::tiny_config;

at::Tensor random_logits(int64_t batch, int64_t vocab, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randn({batch, vocab}, gen, at::TensorOptions().dtype(at::kFloat)) * 3.0;
}

at::Tensor draw(const at::Tensor& logits, const SamplingParams& p, at::Generator& gen) {
  return sample_next(logits, p, gen);
}

TEST(Sampling, TemperatureZeroIsArgmax) {
  const auto logits = random_logits(4, 50, 1);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(0);
  EXPECT_TRUE(at::equal(draw(logits, {0.0, 50, 1.0, 0}, gen), logits.argmax(-1)));
}

TEST(Sampling, TopKOneIsGreedy) {
  const auto logits = random_logits(4, 50, 2);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(0);
  for (int i = 0; i < 20; ++i) EXPECT_TRUE(at::equal(draw(logits, {1.5, 1, 1.0, 0}, gen), logits.argmax(-1)));
}

TEST(Sampling, TinyTopPIsGreedy) {
  const auto logits = random_logits(4, 50, 3);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(0);
  for (int i = 0; i < 20; ++i) EXPECT_TRUE(at::equal(draw(logits, {1.5, 0, 1e-6, 0}, gen), logits.argmax(-1)));
}

TEST(Sampling, SameSeedSameDrawsOtherSeedOtherDraws) {
  const auto logits = random_logits(8, 50, 4) * 0.1;  // flat: draws vary
  auto a = at::make_generator<at::CPUGeneratorImpl>(7), b = at::make_generator<at::CPUGeneratorImpl>(7),
       c = at::make_generator<at::CPUGeneratorImpl>(8);
  bool any_differs = false;
  for (int i = 0; i < 10; ++i) {
    const auto da = draw(logits, {1.0, 0, 1.0, 0}, a), db = draw(logits, {1.0, 0, 1.0, 0}, b);
    EXPECT_TRUE(at::equal(da, db));
    any_differs |= !at::equal(da, draw(logits, {1.0, 0, 1.0, 0}, c));
  }
  EXPECT_TRUE(any_differs);
}

// Top-k and top-p only ever return tokens from their sets.
TEST(Sampling, TopKAndTopPStayInTheirSets) {
  const auto logits = random_logits(1, 40, 5);
  const auto top3 = std::get<1>(logits.topk(3, -1)).view({-1});
  std::set<int64_t> allowed(top3.data_ptr<int64_t>(), top3.data_ptr<int64_t>() + 3);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
  std::set<int64_t> seen_k;
  for (int i = 0; i < 300; ++i) seen_k.insert(draw(logits, {2.0, 3, 1.0, 0}, gen).item<int64_t>());
  EXPECT_EQ(seen_k, allowed);  // all three, nothing else

  // top_p: the smallest prefix of the sorted probabilities whose mass reaches top_p.
  const auto probs = at::softmax(logits / 2.0, -1).view({-1});
  const auto [sorted, order] = probs.sort(-1, true);
  const double top_p = sorted[0].item<double>() + sorted[1].item<double>() * 0.5;  // needs exactly two tokens
  const std::set<int64_t> two = {order[0].item<int64_t>(), order[1].item<int64_t>()};
  std::set<int64_t> seen_p;
  for (int i = 0; i < 300; ++i) seen_p.insert(draw(logits, {2.0, 0, top_p, 0}, gen).item<int64_t>());
  EXPECT_EQ(seen_p, two);
}

TEST(Sampling, BadParametersAreUserErrors) {
  const auto logits = random_logits(1, 10, 6);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(0);
  EXPECT_THROW(draw(logits, {-1.0, 0, 1.0, 0}, gen), UserError);
  EXPECT_THROW(draw(logits, {1.0, 0, 0.0, 0}, gen), UserError);
  EXPECT_THROW(draw(logits, {1.0, 0, 1.5, 0}, gen), UserError);
}

// ---------------------------------------------------------------------------------------------
// Generation

Engine tiny_engine(const std::string& pattern = "TM", int64_t max_seq_len = 32) {
  auto model = make_model(tiny_config({{"block_pattern", pattern}, {"max_seq_len", max_seq_len}}));
  perturb_zero_init(model, 0.5);
  return Engine(model);
}

const std::vector<uint32_t> kPrompt = {5, 17, 3, 60, 2};

TEST(Generate, GreedyIsDeterministicAndEqualsArgmaxOfTheFullForward) {
  auto engine = tiny_engine();
  GenerateOptions o;
  o.max_tokens = 10;
  o.num_samples = 2;
  o.sampling.temperature = 0;
  const auto a = generate(engine, kPrompt, o), b = generate(engine, kPrompt, o);
  ASSERT_EQ(a.tokens[0].size(), 10u);
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.tokens[0], a.tokens[1]);
  // Greedy by full forwards over the growing sequence.
  std::vector<int64_t> seq(kPrompt.begin(), kPrompt.end());
  at::NoGradGuard no_grad;
  for (int i = 0; i < 10; ++i) {
    const auto logits = engine.model()->forward(at::tensor(seq, at::kLong).view({1, -1}));
    seq.push_back(logits.select(1, logits.size(1) - 1).argmax(-1).item<int64_t>());
  }
  EXPECT_EQ(std::vector<uint32_t>(seq.begin() + kPrompt.size(), seq.end()), a.tokens[0]);
}

TEST(Generate, SeededSamplingReproducesAndTopKOneIsGreedy) {
  auto engine = tiny_engine("MT");
  GenerateOptions o;
  o.max_tokens = 12;
  o.num_samples = 3;
  o.sampling = {1.0, 0, 1.0, 11};
  const auto a = generate(engine, kPrompt, o), b = generate(engine, kPrompt, o);
  EXPECT_EQ(a.tokens, b.tokens);
  o.sampling.seed = 12;
  EXPECT_NE(generate(engine, kPrompt, o).tokens, a.tokens);
  o.sampling = {1.0, 1, 1.0, 11};
  const auto top1 = generate(engine, kPrompt, o);
  o.sampling.temperature = 0;
  EXPECT_EQ(top1.tokens, generate(engine, kPrompt, o).tokens);
}

TEST(Generate, StopsAtTheStopToken) {
  auto engine = tiny_engine();
  GenerateOptions o;
  o.max_tokens = 8;
  o.sampling.temperature = 0;
  const auto free_run = generate(engine, kPrompt, o);
  ASSERT_EQ(free_run.tokens[0].size(), 8u);
  o.stop_token = free_run.tokens[0][3];
  int calls = 0;
  const auto stopped =
      generate(engine, kPrompt, o, [&](const std::vector<uint32_t>&, const std::vector<bool>&) { ++calls; });
  // Up to (not including) the first occurrence of the stop token.
  size_t first = 0;
  while (free_run.tokens[0][first] != *o.stop_token) ++first;
  EXPECT_EQ(stopped.tokens[0], std::vector<uint32_t>(free_run.tokens[0].begin(), free_run.tokens[0].begin() + first));
  EXPECT_EQ(calls, static_cast<int>(first) + 1);
  // A stop before max_seq_len is not the length limit, even when max_tokens reaches past it.
  o.max_tokens = 1000;
  EXPECT_FALSE(generate(engine, kPrompt, o).hit_length_limit);
}

TEST(Generate, LengthLimits) {
  auto engine = tiny_engine("TM", 16);
  GenerateOptions o;
  o.max_tokens = 100;
  o.sampling.temperature = 0;
  const auto r = generate(engine, kPrompt, o);  // 5 prompt tokens, positions up to 16: 12 new tokens
  EXPECT_TRUE(r.hit_length_limit);
  EXPECT_EQ(r.tokens[0].size(), 12u);
  EXPECT_THROW(generate(engine, std::vector<uint32_t>(17, 1), o), UserError);
  EXPECT_THROW(generate(engine, {}, o), UserError);
  o.num_samples = 0;
  EXPECT_THROW(generate(engine, kPrompt, o), UserError);
  o.num_samples = kMaxSamples + 1;
  EXPECT_THROW(generate(engine, kPrompt, o), UserError);
  o.num_samples = 1;
  o.max_tokens = INT64_MAX;  // no overflow: the same 12 tokens
  const auto longest = generate(engine, kPrompt, o);
  EXPECT_TRUE(longest.hit_length_limit);
  EXPECT_EQ(longest.tokens[0], r.tokens[0]);
}

// A temperature so small that logits / temperature overflow samples the argmax (no NaN), and
// non-finite logits are a UserError, not a LibTorch exception.
TEST(Generate, ExtremeTemperaturesAndNonFiniteLogits) {
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(1);
  SamplingParams p;
  p.temperature = 1e-300;
  p.top_k = 0;
  const auto logits = at::tensor(std::vector<float>{1, 3, 2, -5, -7, -6}).view({2, 3});
  const auto argmax = at::tensor(std::vector<int64_t>{1, 0});
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(at::equal(sample_next(logits, p, generator), argmax));
  EXPECT_THROW(sample_next(at::tensor(std::vector<float>{1, NAN, 2}).view({1, 3}), p, generator), UserError);
  p.temperature = 0;
  EXPECT_THROW(sample_next(at::tensor(std::vector<float>{INFINITY, 0}).view({1, 2}), p, generator), UserError);
}

}  // namespace
}  // namespace hgpt::infer
