// test_document_boundaries.cpp — document_boundaries "reset" against its independent oracle: each
// document of a packed row run alone (through a model with the same weights that lets documents
// cross, so none of the reset code runs) gives the packed row's logits, per-token losses and,
// summed over the documents, its gradients; for T, M, M2, sliding-window, attention-only and MLP
// layers alone and mixed, with documents across Mamba-2's chunk edges and past the attention
// window; and "cross" really differs.
#include "hgpt/errors.h"
#include "hgpt/train/trainer.h"

#include "tests/model/model_test_util.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <string>
#include <vector>

namespace hgpt::model {
namespace {

using test::make_model;
using test::perturb_zero_init;
using test::tiny_config;

constexpr int64_t kBos = 0;

// Mamba-2 with chunk 8 (documents cross chunk edges), a window of 5 for S layers.
nlohmann::json patch_for(const std::string& pattern, const std::string& boundaries) {
  return {{"depth", pattern.size()}, {"block_pattern", pattern},
          {"mamba2_headdim", 16},    {"mamba2_ngroups", 2},
          {"mamba2_d_state", 16},    {"mamba2_chunk_size", 8},
          {"attn_window", 5},        {"max_seq_len", 64},
          {"total_batch_size", 128}, {"document_boundaries", boundaries},
          {"bos_token_id", kBos}};
}

const std::vector<std::string> kPatterns = {"T", "M", "2", "S", "*-", "TM2S", "2T-M"};

// Two packed rows of 40 tokens. Row 0: documents of 5, 1, 11, 9, 14 tokens, each led by a BOS;
// row 1 starts inside a document (no BOS for its first 6 tokens), then 3, 17 and 14.
struct Packed {
  at::Tensor tokens;                         // (2, 40)
  std::vector<std::vector<int64_t>> starts;  // per row: the first position of each document

  // fn(piece, where) for each document: piece(t) narrows a (2, 40, ...) tensor to its positions.
  template <class Fn>
  void for_each_document(const Fn& fn) const {
    for (size_t r = 0; r < starts.size(); ++r) {
      for (size_t k = 0; k < starts[r].size(); ++k) {
        const int64_t t0 = starts[r][k], t1 = k + 1 < starts[r].size() ? starts[r][k + 1] : tokens.size(1);
        const auto piece = [=](const at::Tensor& t) { return t.narrow(0, r, 1).narrow(1, t0, t1 - t0); };
        fn(piece, "row " + std::to_string(r) + ", document at " + std::to_string(t0));
      }
    }
  }
};

Packed packed_rows(int64_t vocab) {
  const std::vector<std::vector<int64_t>> lengths = {{5, 1, 11, 9, 14}, {6, 3, 17, 14}};
  auto gen = at::make_generator<at::CPUGeneratorImpl>(99);
  Packed p;
  p.tokens = at::randint(1, vocab, {2, 40}, gen, at::TensorOptions().dtype(at::kLong));  // no BOS inside
  for (size_t r = 0; r < lengths.size(); ++r) {
    std::vector<int64_t> starts;
    int64_t t = 0;
    for (size_t k = 0; k < lengths[r].size(); ++k) {
      starts.push_back(t);
      if (r == 0 || k > 0) p.tokens[r][t] = kBos;  // row 1's first piece is a cut document
      t += lengths[r][k];
    }
    EXPECT_EQ(t, 40);
    p.starts.push_back(starts);
  }
  return p;
}

// A model with `from`'s weights and another config (document_boundaries).
HybridGPT same_weights(HybridGPT& from, const ModelConfig& config) {
  HybridGPT to(config);
  at::NoGradGuard no_grad;
  auto source = from->named_parameters();
  for (auto& item : to->named_parameters()) item.value().copy_(source[item.key()]);
  return to;
}

// One pattern's pair of models with the same (perturbed) weights, "reset" and "cross", and the
// packed rows both are run on.
struct ResetAndCross {
  HybridGPT reset, crossing;
  Packed rows;
  explicit ResetAndCross(const std::string& pattern)
      : reset(perturbed(make_model(tiny_config(patch_for(pattern, "reset"))))),
        crossing(same_weights(reset, tiny_config(patch_for(pattern, "cross")))),
        rows(packed_rows(reset->config().vocab_size)) {}
  static HybridGPT perturbed(HybridGPT model) {
    perturb_zero_init(model);
    return model;
  }
};

double relative_error(const at::Tensor& got, const at::Tensor& want) {
  return (got - want).abs().max().item<double>() / want.abs().max().clamp_min(1e-30).item<double>();
}

TEST(DocumentBoundaries, PackedRowWithResetsEqualsEachDocumentAlone) {
  for (const auto& pattern : kPatterns) {
    ResetAndCross models(pattern);
    auto& [reset, crossing, p] = models;
    at::NoGradGuard no_grad;
    const auto packed = reset->forward(p.tokens);
    p.for_each_document([&](const auto& piece, const std::string& where) {
      EXPECT_LE(relative_error(piece(packed), crossing->forward(piece(p.tokens))), 2e-5) << pattern << ": " << where;
    });
    // Not a no-op: letting the documents cross changes the logits after the first document.
    EXPECT_GT(relative_error(crossing->forward(p.tokens), packed), 1e-3) << pattern;
  }
}

// Training: the per-token losses of the packed row equal those of its documents run alone, and
// the gradient of their sum equals the sum of the documents' gradients.
TEST(DocumentBoundaries, TrainingLossesAndGradientsEqualEachDocumentAlone) {
  for (const auto& pattern : kPatterns) {
    ResetAndCross models(pattern);
    auto& [reset, crossing, p] = models;
    const auto targets = at::roll(p.tokens, -1, 1);
    const auto packed = reset->loss(p.tokens, targets, /*per_token=*/true);
    const auto packed_grads = torch::autograd::grad({packed.sum()}, reset->parameters());

    std::vector<at::Tensor> alone_grads;
    for (const auto& param : crossing->parameters()) alone_grads.push_back(at::zeros_like(param));
    p.for_each_document([&](const auto& piece, const std::string& where) {
      const auto losses = crossing->loss(piece(p.tokens), piece(targets), /*per_token=*/true);
      EXPECT_LE(relative_error(piece(packed).detach(), losses.detach()), 2e-5) << pattern << ": " << where;
      const auto grads = torch::autograd::grad({losses.sum()}, crossing->parameters());
      for (size_t i = 0; i < grads.size(); ++i) alone_grads[i] += grads[i];
    });
    const auto names = reset->named_parameters().keys();
    for (size_t i = 0; i < packed_grads.size(); ++i) {
      EXPECT_LE(relative_error(packed_grads[i], alone_grads[i]), 1e-4) << pattern << ": d " << names[i];
    }
  }
}

// bos_token_id is resolved from the data: 256 for the built-in corpus; token shards need the
// tokenizer (or the id), said in one line.
TEST(DocumentBoundaries, TheBosTokenComesFromTheData) {
  nlohmann::json j = {{"depth", 1}, {"document_boundaries", "reset"}, {"vocab_size", 257}};
  EXPECT_EQ(train::with_document_bos(config_from_json(j)).model.bos_token_id, 256);
  j["data"] = "/some/shards";
  try {
    train::with_document_bos(config_from_json(j));
    FAIL() << "expected a UserError";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer"), std::string::npos) << e.what();
  }
  j["bos_token_id"] = 7;
  EXPECT_EQ(train::with_document_bos(config_from_json(j)).model.bos_token_id, 7);
  j["document_boundaries"] = "cross";
  j["bos_token_id"] = -1;
  EXPECT_EQ(train::with_document_bos(config_from_json(j)).model.bos_token_id, -1);  // unused, left alone
}

TEST(DocumentBoundaries, BadValuesAreOneLineErrors) {
  for (const nlohmann::json& bad : {nlohmann::json{{"document_boundaries", "per_doc"}},
                                    nlohmann::json{{"bos_token_id", 97}}, nlohmann::json{{"bos_token_id", -2}}}) {
    try {
      tiny_config(bad);
      FAIL() << "accepted " << bad.dump();
    } catch (const UserError& e) {
      const std::string what = e.what();
      EXPECT_EQ(what.find('\n'), std::string::npos) << what;
      EXPECT_NE(what.find("config key '" + bad.begin().key() + "': must be"), std::string::npos) << what;
    }
  }
}

}  // namespace
}  // namespace hgpt::model
