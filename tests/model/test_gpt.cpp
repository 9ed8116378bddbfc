// test_gpt.cpp — HybridGPT as a whole on tiny configs: the analytic parameter count against the
// real model, the parameter names per block kind, forward shapes, the loss at init, gradients,
// causality, the embedding→norm→head→softcap chain, and FLOPs per token worked out by hand.
#include "hgpt/model/block_kinds.h"
#include "hgpt/model/block_registry.h"
#include "hgpt/model/gpt.h"
#include "hgpt/model/sizes.h"

#include "tests/model/model_test_util.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <set>
#include <string>
#include <vector>

namespace hgpt::model {
namespace {

using nlohmann::json;
using test::make_model;
using test::perturb_zero_init;
using test::tiny_config;

struct NamedConfig {
  std::string name;
  ModelConfig config;
};

// The shapes every count/grad test runs over: T only, M only, hybrid, Mamba with MLP, GQA.
std::vector<NamedConfig> configs() {
  return {
      {"T_only", tiny_config({{"block_pattern", "TT"}})},
      {"M_only", tiny_config({{"block_pattern", "MM"}, {"mamba_d_state", 8}, {"mamba_d_conv", 3}})},
      {"hybrid_TMT", tiny_config({{"depth", 3}, {"head_dim", 32}, {"block_pattern", "TMT"}, {"vocab_size", 300}})},
      {"mamba_mlp", tiny_config({{"block_pattern", "MT"}, {"mamba_use_mlp", true}, {"mamba_expand", 1}})},
      {"gqa", tiny_config({{"block_pattern", "TM"}, {"n_kv_head", 2}})},
  };
}

at::Tensor random_tokens(int64_t batch, int64_t seq, int64_t vocab, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randint(vocab, {batch, seq}, gen, at::TensorOptions().dtype(at::kLong));
}

bool in_block_of_kind(const std::string& name, const ModelConfig& c, char kind) {
  const std::string prefix = "transformer.h.";
  if (name.rfind(prefix, 0) != 0) return false;
  const int64_t layer = std::stoll(name.substr(prefix.size()));
  return c.block_pattern[layer] == kind;
}

// Weights of matrix multiplies: 2-D ".weight" tensors other than the embedding (A_log is 2-D but
// no weight; conv1d's weight is 3-D).
bool is_matmul_weight(const std::string& name, const at::Tensor& p) {
  return ends_with(name, ".weight") && p.dim() == 2 && name != "transformer.wte.weight";
}

TEST(HybridGPT, ParameterCountEqualsTheRealModel) {
  for (const auto& [label, c] : configs()) {
    SCOPED_TRACE(label);
    HybridGPT model(c);
    int64_t total = 0, t_blocks = 0, m_blocks = 0, matmul = 0;
    for (const auto& item : model->named_parameters()) {
      const auto n = item.value().numel();
      total += n;
      if (in_block_of_kind(item.key(), c, 'T')) t_blocks += n;
      if (in_block_of_kind(item.key(), c, 'M')) m_blocks += n;
      if (is_matmul_weight(item.key(), item.value())) matmul += n;
    }
    const auto p = count_parameters(c);
    EXPECT_EQ(p.total, total);
    EXPECT_EQ(p.blocks.at('T'), t_blocks);
    EXPECT_EQ(p.blocks.at('M'), m_blocks);
    EXPECT_EQ(p.matmul, matmul);
    EXPECT_EQ(p.embedding, c.vocab_size * c.model_dim());
    EXPECT_EQ(p.lm_head, c.vocab_size * c.model_dim());
    EXPECT_EQ(p.embedding + p.lm_head + p.blocks.at('T') + p.blocks.at('M'), p.total);
  }
}

// Every kind of the registry: its factory builds a block that says its own symbol, and the kind's
// size terms count that block's real parameters (all, the small ones, the matrices).
TEST(BlockRegistry, EveryKindBuildsItsBlockAndCountsItsParameters) {
  for (bool use_mlp : {false, true}) {
    const auto c = tiny_config({{"mamba_use_mlp", use_mlp}});
    for (const auto& kind : block_kinds()) {
      SCOPED_TRACE(kind.name + (use_mlp ? " with MLP" : ""));
      EXPECT_EQ(find_block_kind(kind.symbol), &kind);
      EXPECT_EQ(find_block_kind(kind.name), &kind);
      const auto block = make_block(kind.symbol, c);
      EXPECT_EQ(block->kind(), kind.symbol);
      const auto small_names = block->small_parameters();
      const std::set<std::string> small(small_names.begin(), small_names.end());
      int64_t all = 0, small_count = 0, matmul = 0;
      for (const auto& item : block->named_parameters()) {
        const auto n = item.value().numel();
        all += n;
        if (small.count(item.key()))
          small_count += n;
        else if (item.value().dim() == 2)
          matmul += n;
      }
      const BlockSizes sizes = block_sizes(kind.symbol, c, /*cuda=*/false);
      EXPECT_EQ(sizes.params(), all);
      EXPECT_EQ(sizes.small_params, small_count);
      EXPECT_EQ(sizes.matmul_params, matmul);
      EXPECT_EQ(small.size(), small_names.size());  // no name twice
      for (const auto& name : small_names) EXPECT_TRUE(block->named_parameters().contains(name)) << name;
    }
  }
}

TEST(HybridGPT, ParameterCountsOfTheD20Configs) {
  // Issue 2's facts (vocab 65536), from the analytic count: no 560M-parameter model is built.
  auto d20 = [](const json& pattern) { return config_from_json(json{{"block_pattern", pattern}}).model; };
  EXPECT_EQ(count_parameters(d20(nullptr)).total, 560988160);
  EXPECT_EQ(count_parameters(d20(std::string(20, 'M'))).total, 375388160);
}

TEST(HybridGPT, TMModelHasExactlyTheNamedParameters) {
  const auto c = tiny_config({{"block_pattern", "TM"}});
  HybridGPT model(c);
  std::set<std::string> names;
  for (const auto& item : model->named_parameters()) names.insert(item.key());
  const std::set<std::string> expected = {
      "transformer.wte.weight",
      "transformer.h.0.attn.c_q.weight",
      "transformer.h.0.attn.c_k.weight",
      "transformer.h.0.attn.c_v.weight",
      "transformer.h.0.attn.c_proj.weight",
      "transformer.h.0.mlp.c_fc.weight",
      "transformer.h.0.mlp.c_proj.weight",
      "transformer.h.1.mixer.in_proj.weight",
      "transformer.h.1.mixer.conv1d.weight",
      "transformer.h.1.mixer.conv1d.bias",
      "transformer.h.1.mixer.x_proj.weight",
      "transformer.h.1.mixer.dt_proj.weight",
      "transformer.h.1.mixer.dt_proj.bias",
      "transformer.h.1.mixer.A_log",
      "transformer.h.1.mixer.D",
      "transformer.h.1.mixer.out_proj.weight",
      "lm_head.weight",
  };
  EXPECT_EQ(names, expected);
  ASSERT_EQ(model->blocks().size(), 2u);
  EXPECT_EQ(model->blocks()[0]->kind(), 'T');
  EXPECT_EQ(model->blocks()[1]->kind(), 'M');
  // Shapes as in nanochat / mamba_simple.py (dim 64, d_inner 128, dt_rank 4, N 16, d_conv 4).
  const auto params = model->named_parameters();
  EXPECT_EQ(params["transformer.h.1.mixer.in_proj.weight"].sizes(), at::IntArrayRef({256, 64}));
  EXPECT_EQ(params["transformer.h.1.mixer.conv1d.weight"].sizes(), at::IntArrayRef({128, 1, 4}));
  EXPECT_EQ(params["transformer.h.1.mixer.x_proj.weight"].sizes(), at::IntArrayRef({4 + 32, 128}));
  EXPECT_EQ(params["transformer.h.1.mixer.dt_proj.weight"].sizes(), at::IntArrayRef({128, 4}));
  EXPECT_EQ(params["transformer.h.1.mixer.A_log"].sizes(), at::IntArrayRef({128, 16}));
  EXPECT_EQ(params["transformer.h.1.mixer.out_proj.weight"].sizes(), at::IntArrayRef({64, 128}));
  EXPECT_EQ(params["transformer.h.0.mlp.c_fc.weight"].sizes(), at::IntArrayRef({256, 64}));
  EXPECT_EQ(params["lm_head.weight"].sizes(), at::IntArrayRef({97, 64}));
}

TEST(HybridGPT, MambaMlpAndGqaShapes) {
  const auto c = tiny_config({{"block_pattern", "MT"}, {"mamba_use_mlp", true}, {"n_kv_head", 2}});
  HybridGPT model(c);
  const auto params = model->named_parameters();
  EXPECT_TRUE(params.contains("transformer.h.0.mlp.c_fc.weight"));
  EXPECT_TRUE(params.contains("transformer.h.0.mlp.c_proj.weight"));
  // 4 query heads of 16, 2 kv heads of 16.
  EXPECT_EQ(params["transformer.h.1.attn.c_q.weight"].sizes(), at::IntArrayRef({64, 64}));
  EXPECT_EQ(params["transformer.h.1.attn.c_k.weight"].sizes(), at::IntArrayRef({32, 64}));
  EXPECT_EQ(params["transformer.h.1.attn.c_v.weight"].sizes(), at::IntArrayRef({32, 64}));
}

TEST(HybridGPT, ForwardGivesFp32LogitsOfShapeBTV) {
  for (const auto& [label, c] : configs()) {
    SCOPED_TRACE(label);
    auto model = make_model(c);
    perturb_zero_init(model);
    for (int64_t seq : {c.sequence_len, int64_t{7}}) {
      const auto logits = model->forward(random_tokens(3, seq, c.vocab_size, 5));
      EXPECT_EQ(logits.sizes(), at::IntArrayRef({3, seq, c.vocab_size}));
      EXPECT_EQ(logits.scalar_type(), at::kFloat);
      EXPECT_TRUE(at::isfinite(logits).all().item<bool>());
      EXPECT_LE(logits.abs().max().item<float>(), 15.0f);  // soft cap
    }
  }
}

TEST(HybridGPT, LossAtInitIsLnVocab) {
  for (const auto& [label, c] : configs()) {
    SCOPED_TRACE(label);
    auto model = make_model(c);
    const auto idx = random_tokens(2, 16, c.vocab_size, 11);
    const auto targets = random_tokens(2, 16, c.vocab_size, 12);
    // lm_head starts at zero: uniform logits, loss ln(V) exactly.
    EXPECT_NEAR(model->loss(idx, targets).item<double>(), std::log(double(c.vocab_size)), 1e-5);
  }
}

TEST(HybridGPT, LossIsMeanCrossEntropyIgnoringMinusOne) {
  const auto c = tiny_config({{"block_pattern", "TM"}});
  auto model = make_model(c);
  perturb_zero_init(model, 0.5);
  const auto idx = random_tokens(2, 10, c.vocab_size, 3);
  auto targets = random_tokens(2, 10, c.vocab_size, 4);
  targets.index_put_({0, 3}, -1);
  targets.index_put_({1, 0}, -1);
  targets.index_put_({1, 9}, -1);
  at::NoGradGuard no_grad;
  const auto logp = at::log_softmax(model->forward(idx).to(at::kDouble), -1);
  double sum = 0;
  int counted = 0;
  const auto per_token = model->loss(idx, targets, /*per_token=*/true);
  ASSERT_EQ(per_token.sizes(), targets.sizes());
  for (int64_t b = 0; b < 2; ++b) {
    for (int64_t t = 0; t < 10; ++t) {
      const int64_t y = targets[b][t].item<int64_t>();
      if (y < 0) {
        EXPECT_EQ(per_token[b][t].item<float>(), 0.0f);
        continue;
      }
      const double nll = -logp[b][t][y].item<double>();
      EXPECT_NEAR(per_token[b][t].item<double>(), nll, 1e-4);
      sum += nll, ++counted;
    }
  }
  EXPECT_EQ(counted, 17);
  EXPECT_NEAR(model->loss(idx, targets).item<double>(), sum / counted, 1e-4);
}

TEST(HybridGPT, LogitsAtInitAreTheSoftcappedHeadOfTheNormedEmbedding) {
  // At init every block's output projection is zero, so each block is the identity and
  // logits = 15·tanh(norm(norm(wte[idx])) · lm_headᵀ / 15). Give lm_head large values so the cap bites.
  const auto c = tiny_config({{"block_pattern", "TM"}});
  auto model = make_model(c);
  auto params = model->named_parameters();
  {
    at::NoGradGuard no_grad;
    params["lm_head.weight"].normal_(0.0, 20.0);
  }
  const auto idx = random_tokens(2, 9, c.vocab_size, 8);
  at::NoGradGuard no_grad;
  const auto logits = model->forward(idx).to(at::kDouble);
  auto norm = [](const at::Tensor& x) {
    const double eps = std::numeric_limits<float>::epsilon();
    return x / at::sqrt(x.square().mean(-1, true) + eps);
  };
  const auto e = params["transformer.wte.weight"].to(at::kDouble).index_select(0, idx.reshape(-1));
  const auto raw = at::matmul(norm(norm(e)), params["lm_head.weight"].to(at::kDouble).t());
  const auto expected = (15.0 * at::tanh(raw / 15.0)).view({2, 9, c.vocab_size});
  EXPECT_GT(raw.abs().max().item<double>(), 30.0);  // the cap is exercised
  EXPECT_TRUE(at::allclose(logits, expected, 1e-4, 1e-4)) << (logits - expected).abs().max().item<double>();
}

TEST(HybridGPT, BackwardGradsAreFiniteAtInitAndNonZeroOncePerturbed) {
  for (const auto& [label, c] : configs()) {
    SCOPED_TRACE(label);
    auto model = make_model(c);
    const auto idx = random_tokens(2, 12, c.vocab_size, 21);
    const auto targets = random_tokens(2, 12, c.vocab_size, 22);
    model->loss(idx, targets).backward();
    for (const auto& item : model->named_parameters()) {
      const auto& g = item.value().grad();
      ASSERT_TRUE(g.defined()) << item.key();
      EXPECT_EQ(g.sizes(), item.value().sizes()) << item.key();
      EXPECT_TRUE(at::isfinite(g).all().item<bool>()) << item.key();
    }
    // With the zero-init weights perturbed, every parameter influences the loss.
    model->zero_grad();
    perturb_zero_init(model);
    model->loss(idx, targets).backward();
    for (const auto& item : model->named_parameters()) {
      const auto& g = item.value().grad();
      ASSERT_TRUE(g.defined()) << item.key();
      EXPECT_TRUE(at::isfinite(g).all().item<bool>()) << item.key();
      EXPECT_GT(g.abs().max().item<double>(), 0.0) << item.key() << " has an all-zero gradient";
    }
  }
}

// Changing token t leaves the logits before t as they were and changes those at and after t.
void expect_causal(const ModelConfig& c) {
  auto model = make_model(c);
  perturb_zero_init(model, 0.3);
  const int64_t seq = 16, t = 9;
  auto idx = random_tokens(2, seq, c.vocab_size, 31);
  auto changed = idx.clone();
  changed.index_put_({at::indexing::Slice(), t}, (idx.select(1, t) + 1) % c.vocab_size);
  at::NoGradGuard no_grad;
  const auto a = model->forward(idx), b = model->forward(changed);
  const auto before = (a.narrow(1, 0, t) - b.narrow(1, 0, t)).abs().max().item<double>();
  EXPECT_LE(before, 1e-5) << "logits before the changed token moved";
  for (int64_t s = t; s < seq; ++s) {
    const auto diff = (a.select(1, s) - b.select(1, s)).abs().max().item<double>();
    EXPECT_GT(diff, 1e-4) << "position " << s << " did not see the change at " << t;
  }
}

TEST(HybridGPT, CausalTransformerOnly) { expect_causal(tiny_config({{"block_pattern", "TT"}})); }
TEST(HybridGPT, CausalMambaOnly) { expect_causal(tiny_config({{"block_pattern", "MM"}})); }
TEST(HybridGPT, CausalHybrid) {
  expect_causal(tiny_config({{"depth", 3}, {"head_dim", 32}, {"block_pattern", "MTM"}, {"n_kv_head", 1}}));
}

// max_seq_len is the training length, not a limit: a longer sequence runs (length extrapolation),
// and causality holds there too — its first 16 positions are the 16-token forward.
TEST(HybridGPT, RunsSequencesLongerThanMaxSeqLen) {
  const auto c = tiny_config({{"block_pattern", "TM"}, {"max_seq_len", 16}});
  auto model = make_model(c);
  const auto tokens = random_tokens(2, 40, c.vocab_size, 1);
  const auto longer = model->forward(tokens);
  ASSERT_EQ(longer.size(1), 40);
  EXPECT_TRUE(at::allclose(longer.narrow(1, 0, 16), model->forward(tokens.narrow(1, 0, 16)), 1e-5, 1e-5));
}

TEST(HybridGPT, RejectsAPatternThatDoesNotMatchDepth) {
  // A hand-built ModelConfig (not through config_from_json) has an empty block_pattern: the
  // model must refuse it rather than silently build zero layers, and must not read an unknown
  // letter as 'M'.
  auto c = tiny_config({{"block_pattern", "TM"}});
  c.block_pattern = "";
  EXPECT_THROW(HybridGPT{c}, c10::Error) << "depth 2 with an empty pattern built a model";
  c.block_pattern = "TX";
  EXPECT_THROW(HybridGPT{c}, c10::Error) << "pattern letter 'X' was accepted";
}

TEST(FlopsPerToken, TransformerOnlyByHand) {
  // depth 2, dim 64, 4 heads of 16, vocab 97, seq 32.
  const auto c = tiny_config({{"block_pattern", "TT"}});
  const double d = 64, V = 97, layers = 2, seq = 32, heads = 4, hd = 16;
  const double matmul = layers * (4 * d * d /*q,k,v,proj*/ + 8 * d * d /*mlp*/) + V * d /*lm_head*/;
  const double expected = 6 * matmul + 12 * heads * hd * seq * layers;
  EXPECT_DOUBLE_EQ(flops_per_token(c), expected);
}

TEST(FlopsPerToken, MambaLayersCountScanAndConvNotAttention) {
  // depth 2 "MT", dim 64, d_inner 128, dt_rank 4, N 16, d_conv 4; T layer 4 heads of 16, seq 32.
  const auto c = tiny_config({{"block_pattern", "MT"}});
  const double d = 64, di = 128, r = 4, N = 16, K = 4, V = 97, seq = 32;
  const double t_matmul = 12 * d * d;
  const double m_matmul = d * 2 * di + di * (r + 2 * N) + r * di + di * d;
  const double expected = 6 * (t_matmul + m_matmul + V * d) + 12 * 4 * 16 * seq + 27 * di * N + 6 * di * K;
  EXPECT_DOUBLE_EQ(flops_per_token(c), expected);
}

}  // namespace
}  // namespace hgpt::model
