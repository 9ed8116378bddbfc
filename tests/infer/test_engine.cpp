// test_engine.cpp — the inference engine against the model's full forward: prefill + one token at
// a time gives the logits of the full forward at every position, for every kind of block pattern
// (T, M, M2, sliding-window, attention-only and MLP-only layers, mixes, Mamba with MLP, GQA) and
// prompts around the conv width and past the attention window; the Mamba step against its formula
// worked out by hand in double; the state's size, flat with length for windowed layers.
#include "hgpt/errors.h"
#include "hgpt/infer/engine.h"
#include "hgpt/model/mamba_block.h"

#include "tests/model/model_test_util.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

namespace hgpt::infer {
namespace {

using model::test::make_model;
using model::test::perturb_zero_init;
using model::test::tiny_config;

struct Case {
  std::string name;
  nlohmann::json patch;
};

// Depth = pattern length; width 32 per layer, head_dim 16, max_seq_len 64, d_conv 4.
std::vector<Case> cases() {
  std::vector<Case> out;
  for (std::string p : {"T", "M", "TM", "MT", "TTMM", "MMTM"}) {
    out.push_back({p, {{"depth", p.size()}, {"block_pattern", p}}});
  }
  out.push_back({"TM_mamba_mlp", {{"block_pattern", "TM"}, {"mamba_use_mlp", true}}});
  out.push_back({"TM_gqa", {{"block_pattern", "TM"}, {"n_kv_head", 2}}});
  // Mamba-2 (symbol '2'): 8 heads of 16 in 2 groups, chunk 8, so prompts of 7, 8, 9 and 40
  // tokens end inside, at and past chunk boundaries.
  const nlohmann::json m2 = {
      {"mamba2_headdim", 16}, {"mamba2_ngroups", 2}, {"mamba2_d_state", 16}, {"mamba2_chunk_size", 8}};
  for (std::string p : {"2", "T2", "2M", "T2M2", "M2T"}) {
    nlohmann::json patch = m2;
    patch["depth"] = p.size();
    patch["block_pattern"] = p;
    out.push_back({p, patch});
  }
  nlohmann::json with_mlp = m2;
  with_mlp["block_pattern"] = "2T";
  with_mlp["mamba_use_mlp"] = true;
  out.push_back({"2T_mamba_mlp", with_mlp});
  // Sliding-window layers with a window of 5, so prompts of 7, 9 and 40 tokens and the decode
  // steps after them run past it (and the ring of 5 slots wraps); attention-only and MLP-only
  // layers, alone and in Megatron-style stacks.
  for (std::string p : {"S", "TS", "S*-", "2-*S", "*-", "-2*"}) {
    nlohmann::json patch = m2;
    patch["depth"] = p.size();
    patch["block_pattern"] = p;
    patch["attn_window"] = 5;
    out.push_back({p, patch});
  }
  out.push_back({"S_gqa", {{"block_pattern", "SS"}, {"attn_window", 5}, {"n_kv_head", 2}}});
  out.push_back({"S_window_1", {{"block_pattern", "S"}, {"depth", 1}, {"attn_window", 1}}});
  for (auto& c : out) c.patch["max_seq_len"] = 64, c.patch["total_batch_size"] = 128;
  return out;
}

at::Tensor random_tokens(int64_t batch, int64_t seq, int64_t vocab, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randint(vocab, {batch, seq}, gen, at::TensorOptions().dtype(at::kLong));
}

double relative_error(const at::Tensor& got, const at::Tensor& want) {
  return (got - want).abs().max().item<double>() / want.abs().max().item<double>();
}

// Prefill on `prompt` tokens, then `decode` single-token steps; the logits of every position.
at::Tensor prefill_then_decode(Engine& engine, const at::Tensor& tokens, int64_t prompt) {
  auto state = engine.new_state(tokens.size(1));
  std::vector<at::Tensor> logits = {engine.forward(tokens.narrow(1, 0, prompt), state)};
  for (int64_t t = prompt; t < tokens.size(1); ++t) logits.push_back(engine.forward(tokens.narrow(1, t, 1), state));
  EXPECT_EQ(state.length, tokens.size(1));
  return at::cat(logits, 1);
}

TEST(Engine, PrefillAndDecodeEqualTheFullForward) {
  const int64_t d_conv = 4, decode_steps = 6;
  for (const auto& c : cases()) {
    const auto config = tiny_config(c.patch);
    ASSERT_EQ(config.mamba_d_conv, d_conv);
    auto model = make_model(config);
    perturb_zero_init(model);
    Engine engine(model);
    for (int64_t prompt : {int64_t{1}, d_conv - 1, d_conv, int64_t{7}, int64_t{9}, int64_t{40}}) {
      const auto tokens = random_tokens(3, prompt + decode_steps, config.vocab_size, 17 + prompt);
      at::Tensor want;
      {
        at::NoGradGuard no_grad;
        want = model->forward(tokens);
      }
      const auto got = prefill_then_decode(engine, tokens, prompt);
      ASSERT_EQ(got.sizes(), want.sizes()) << c.name;
      EXPECT_LE(relative_error(got, want), 1e-5) << c.name << ", prompt " << prompt;
    }
  }
}

// document_boundaries "reset": a BOS in the prompt or among the decoded tokens starts a fresh
// document (KV caches masked to it, Mamba conv and SSM states zeroed), so prefill + decode give
// the full forward's logits — which test_document_boundaries.cpp checks against each document run
// alone. Documents longer than the window of 5 (the ring wraps), BOS tokens next to each other.
TEST(Engine, DocumentResetsInPromptAndDecodeEqualTheFullForward) {
  const nlohmann::json base = {{"mamba2_headdim", 16},    {"mamba2_ngroups", 2}, {"mamba2_d_state", 16},
                               {"mamba2_chunk_size", 8},  {"attn_window", 5},    {"max_seq_len", 64},
                               {"total_batch_size", 128}, {"bos_token_id", 0},   {"document_boundaries", "reset"}};
  for (std::string p : {"T", "M", "2", "S", "TM2S", "*-"}) {
    nlohmann::json patch = base;
    patch["depth"] = p.size();
    patch["block_pattern"] = p;
    const auto config = tiny_config(patch);
    auto model = make_model(config);
    perturb_zero_init(model);
    Engine engine(model);
    auto tokens = random_tokens(3, 30, config.vocab_size - 1, 23) + 1;  // no BOS but where placed
    for (int64_t t : {0, 4, 5, 13, 22, 27}) tokens[0][t] = 0;
    for (int64_t t : {3, 17}) tokens[1][t] = 0;
    at::Tensor want;
    {
      at::NoGradGuard no_grad;
      want = model->forward(tokens);
    }
    for (int64_t prompt : {int64_t{1}, int64_t{5}, int64_t{9}, int64_t{14}, int64_t{23}}) {
      EXPECT_LE(relative_error(prefill_then_decode(engine, tokens, prompt), want), 1e-5) << p << ", prompt " << prompt;
    }
  }
}

// Several tokens after the prefill go one step at a time: the same logits as single steps.
TEST(Engine, SeveralTokensAfterThePrefillAreSteps) {
  const auto config = tiny_config({{"block_pattern", "TM"}, {"max_seq_len", 64}, {"total_batch_size", 128}});
  auto model = make_model(config);
  perturb_zero_init(model);
  Engine engine(model);
  const auto tokens = random_tokens(2, 12, config.vocab_size, 5);
  auto state = engine.new_state(12);
  const auto a =
      at::cat({engine.forward(tokens.narrow(1, 0, 5), state), engine.forward(tokens.narrow(1, 5, 7), state)}, 1);
  EXPECT_TRUE(at::equal(a, prefill_then_decode(engine, tokens, 5)));
}

TEST(Engine, StateBytesAreTheCachesAndStates) {
  const auto config = tiny_config(
      {{"depth", 3}, {"block_pattern", "TMM"}, {"n_kv_head", 2}, {"max_seq_len", 64}, {"total_batch_size", 128}});
  auto model = make_model(config);
  Engine engine(model);
  const int64_t B = 3, capacity = 50;
  auto state = engine.new_state(capacity);
  engine.forward(random_tokens(B, 7, config.vocab_size, 1), state);
  const int64_t kv = 2 * B * config.kv_heads() * capacity * config.attn_head_dim() * 4;
  const int64_t mamba =
      B * config.mamba_expand * config.model_dim() * (config.mamba_d_conv - 1 + config.mamba_d_state) * 4;
  EXPECT_EQ(state.bytes(), kv + 2 * mamba);
}

// A Mamba-2 layer keeps its conv window over x, B and C and its (heads, headdim, d_state) state.
TEST(Engine, Mamba2StateIsItsConvWindowAndItsHeadsStates) {
  const auto config = tiny_config({{"depth", 2},
                                   {"block_pattern", "T2"},
                                   {"mamba2_headdim", 16},
                                   {"mamba2_ngroups", 2},
                                   {"mamba2_d_state", 16},
                                   {"max_seq_len", 64},
                                   {"total_batch_size", 128}});
  auto model = make_model(config);
  Engine engine(model);
  const int64_t B = 3, capacity = 50;
  auto state = engine.new_state(capacity);
  engine.forward(random_tokens(B, 7, config.vocab_size, 1), state);
  const int64_t kv = 2 * B * config.kv_heads() * capacity * config.attn_head_dim() * 4;
  const int64_t d_inner = config.mamba_expand * config.model_dim(), heads = d_inner / 16;
  const int64_t conv = B * (d_inner + 2 * 2 * 16) * (config.mamba_d_conv - 1) * 4;
  const int64_t ssm = B * heads * 16 * 16 * 4;
  EXPECT_EQ(state.bytes(), kv + conv + ssm);
}

// A windowed layer's cache is a ring of attn_window slots whatever the capacity, and stays that
// size while decoding runs past it; an MLP-only layer keeps nothing.
TEST(Engine, SlidingWindowCacheStaysAtItsWindow) {
  const auto config = tiny_config({{"depth", 3},
                                   {"block_pattern", "TS-"},
                                   {"attn_window", 8},
                                   {"n_kv_head", 2},
                                   {"max_seq_len", 64},
                                   {"total_batch_size", 128}});
  auto model = make_model(config);
  Engine engine(model);
  const int64_t B = 3, capacity = 50;
  auto state = engine.new_state(capacity);
  const auto tokens = random_tokens(B, 40, config.vocab_size, 2);
  engine.forward(tokens.narrow(1, 0, 3), state);
  const int64_t per_position = 2 * B * config.kv_heads() * config.attn_head_dim() * 4;
  EXPECT_EQ(state.bytes(), per_position * (capacity + 8));
  for (int64_t t = 3; t < 40; ++t) engine.forward(tokens.narrow(1, t, 1), state);
  EXPECT_EQ(state.bytes(), per_position * (capacity + 8));
}

TEST(Engine, RefusesMoreThanMaxSeqLen) {
  const auto config = tiny_config({{"block_pattern", "TM"}});
  Engine engine(make_model(config));
  EXPECT_THROW(engine.new_state(config.sequence_len + 1), UserError);
  auto state = engine.new_state(4);
  EXPECT_THROW(engine.forward(random_tokens(1, 5, config.vocab_size, 1), state), c10::Error);
}

// ---------------------------------------------------------------------------------------------
// One Mamba step, by hand in double: every intermediate of the recurrence for every channel.

double softplus(double v) { return std::log1p(std::exp(v)); }
double silu(double v) { return v / (1.0 + std::exp(-v)); }

TEST(MambaStep, EqualsTheFormulaByHandInDouble) {
  at::manual_seed(3);
  const model::MambaShape shape{8, 4, 3, 2};  // dim, d_state, d_conv, expand
  const int64_t dim = shape.dim, di = shape.d_inner(), N = shape.d_state, K = shape.d_conv, R = shape.dt_rank();
  model::MambaMixer mixer(shape);
  mixer->init_weights();
  {
    at::NoGradGuard no_grad;
    mixer->out_proj->weight.normal_(0.0, 0.3);
    mixer->D.normal_(1.0, 0.5);
  }
  mixer->to(at::kDouble);
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  const auto x_in = at::randn({1, 1, dim}, f64);
  model::MambaState state;
  state.conv = at::randn({1, di, K - 1}, f64);
  state.ssm = at::randn({1, di, N}, f64);
  const auto conv0 = state.conv.clone(), h0 = state.ssm.clone();
  at::Tensor out;
  {
    at::NoGradGuard no_grad;
    out = mixer->step(x_in, state);
  }

  auto W = [](const at::Tensor& t) { return t.accessor<double, 2>(); };
  const auto w_in = W(mixer->in_proj->weight), w_x = W(mixer->x_proj->weight), w_dt = W(mixer->dt_proj->weight),
             w_out = W(mixer->out_proj->weight), A_log = W(mixer->A_log);
  const auto conv_w = mixer->conv1d->weight.accessor<double, 3>();
  const auto conv_b = mixer->conv1d->bias.accessor<double, 1>(), dt_b = mixer->dt_proj->bias.accessor<double, 1>(),
             D = mixer->D.accessor<double, 1>();
  const auto x = x_in.accessor<double, 3>();
  const auto c0 = conv0.accessor<double, 3>(), hs = h0.accessor<double, 3>();

  std::vector<double> xz(2 * di, 0.0), u(di), gate(di);
  for (int64_t i = 0; i < 2 * di; ++i)
    for (int64_t j = 0; j < dim; ++j) xz[i] += w_in[i][j] * x[0][0][j];
  for (int64_t d = 0; d < di; ++d) {  // window = [conv state, x]
    double acc = conv_b[d];
    for (int64_t k = 0; k < K - 1; ++k) acc += conv_w[d][0][k] * c0[0][d][k];
    acc += conv_w[d][0][K - 1] * xz[d];
    u[d] = silu(acc);
  }
  std::vector<double> x_dbl(R + 2 * N, 0.0);
  for (int64_t i = 0; i < R + 2 * N; ++i)
    for (int64_t d = 0; d < di; ++d) x_dbl[i] += w_x[i][d] * u[d];
  const auto h = state.ssm.accessor<double, 3>();
  for (int64_t d = 0; d < di; ++d) {
    double dt = dt_b[d];
    for (int64_t r = 0; r < R; ++r) dt += w_dt[d][r] * x_dbl[r];
    const double delta = softplus(dt);
    double y = D[d] * u[d];
    for (int64_t n = 0; n < N; ++n) {
      const double A = -std::exp(A_log[d][n]);
      const double h_new = std::exp(delta * A) * hs[0][d][n] + delta * x_dbl[R + n] * u[d];
      EXPECT_NEAR(h[0][d][n], h_new, 1e-12) << "channel " << d << ", state " << n;
      y += x_dbl[R + N + n] * h_new;
    }
    gate[d] = y * silu(xz[di + d]);
  }
  const auto o = out.accessor<double, 3>();
  for (int64_t i = 0; i < dim; ++i) {
    double want = 0.0;
    for (int64_t d = 0; d < di; ++d) want += w_out[i][d] * gate[d];
    EXPECT_NEAR(o[0][0][i], want, 1e-12) << "output " << i;
  }
  // The conv state moved by one: its old tail, then this step's x.
  const auto c = state.conv.accessor<double, 3>();
  for (int64_t d = 0; d < di; ++d) {
    for (int64_t k = 0; k + 1 < K - 1; ++k) EXPECT_EQ(c[0][d][k], c0[0][d][k + 1]);
    EXPECT_NEAR(c[0][d][K - 2], xz[d], 1e-12);
  }
}

}  // namespace
}  // namespace hgpt::infer
