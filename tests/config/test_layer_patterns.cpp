// test_layer_patterns.cpp — the keys that write block_pattern besides block_pattern itself:
// Megatron-LM's hybrid_layer_pattern and its allocation by hybrid_attention_ratio /
// hybrid_mlp_ratio (its 8B example, worked cases, the checks it makes), nanochat's
// window_pattern over the attention layers, and attn_window's default. Each bad value is one
// line naming its key, and a resolved config reloads to itself.
#include "hgpt/config.h"
#include "hgpt/errors.h"
#include "hgpt/model/hybrid_layer_pattern.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <string>

namespace hgpt {
namespace {

using nlohmann::json;

// A small valid model; the patch on top.
Config load(const json& patch, const std::vector<std::string>& overrides = {}) {
  json j = {{"aspect_ratio", 16}, {"head_dim", 16}, {"max_seq_len", 256}, {"mamba2_headdim", 16}};
  j.merge_patch(patch);
  j["device_batch_size"] = 1;
  j["total_batch_size"] = j["max_seq_len"];
  return config_from_json(j, overrides);
}

// The one-line message of the UserError loading `patch` throws.
std::string error_of(const json& patch) {
  try {
    load(patch);
  } catch (const UserError& e) {
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "expected a UserError for " << patch.dump();
  return "";
}

void expect_names_key(const json& patch, const std::string& key) {
  const auto msg = error_of(patch);
  EXPECT_EQ(msg.rfind("config key '" + key + "'", 0), 0u) << patch.dump() << ": " << msg;
}

void expect_reloads_to_itself(const Config& c) {
  const json j = c.to_json();
  EXPECT_EQ(config_from_json(j).to_json(), j);
}

// Megatron-LM's 8B hybrid (its --hybrid-attention-ratio 0.08 --hybrid-mlp-ratio 0.5 over 56 layers).
TEST(HybridLayerPattern, AllocatesMegatronsEightBillionExample) {
  const std::string megatron = "M-M-M--M-M*-M-M-M-M--M*-M-M-M-M-M*--M-M-M-M-M*-M--M-M-M-";
  EXPECT_EQ(model::allocate_hybrid_layers(56, 0.08, 0.5), megatron);
  const auto c = load({{"depth", 56},
                       {"aspect_ratio", 8},
                       {"hybrid_attention_ratio", 0.08},
                       {"hybrid_mlp_ratio", 0.5},
                       {"mamba2_headdim", 32}});
  EXPECT_EQ(model::megatron_notation(c.model.block_pattern), megatron);
  EXPECT_EQ(c.model.count('2'), 24);
  EXPECT_EQ(c.model.count('*'), 4);
  EXPECT_EQ(c.model.count('-'), 28);
  expect_reloads_to_itself(c);
}

// Cases worked out by hand from the rule (x counts down the Mamba layers owed to a section).
TEST(HybridLayerPattern, AllocatesAsTheRuleSays) {
  EXPECT_EQ(model::allocate_hybrid_layers(4, 0.25, 0.5), "M-*-");
  EXPECT_EQ(model::allocate_hybrid_layers(6, 1.0 / 6, 0.5), "M--*M-");
  EXPECT_EQ(model::allocate_hybrid_layers(5, 0.0, 0.0), "MMMMM");
  EXPECT_EQ(model::allocate_hybrid_layers(3, 1.0, 0.0), "***");
  EXPECT_EQ(model::allocate_hybrid_layers(4, 0.0, 1.0), "----");
  EXPECT_EQ(model::allocate_hybrid_layers(20, 0.1, 0.0), "MMMMMM*MMMMMM*MMMMMM");
  // Python's round: 2.5 → 2, 3.5 → 4.
  EXPECT_EQ(model::allocate_hybrid_layers(5, 0.5, 0.0), "M*M*M");
  EXPECT_EQ(model::allocate_hybrid_layers(7, 0.5, 0.0), "M**M**M");
}

TEST(HybridLayerPattern, StringGivesDepthAndLayers) {
  const auto c = load({{"hybrid_layer_pattern", "M-M*-"}});
  EXPECT_EQ(c.model.depth, 5);
  EXPECT_EQ(c.model.block_pattern, "2-2*-");
  expect_reloads_to_itself(c);
  // The same from the command line, and with a depth that agrees.
  EXPECT_EQ(load({{"depth", 3}}, {"hybrid_layer_pattern=*-M", "depth=3"}).model.block_pattern, "*-2");
  // Ratios that give the string's counts are accepted (Megatron-LM's override check).
  EXPECT_EQ(load({{"hybrid_layer_pattern", "M*--"}, {"hybrid_attention_ratio", 0.25}, {"hybrid_mlp_ratio", 0.5}})
                .model.block_pattern,
            "2*--");
}

TEST(HybridLayerPattern, BadValuesNameTheirKey) {
  expect_names_key({{"hybrid_layer_pattern", "M*E-"}}, "hybrid_layer_pattern");  // MoE: not ours
  expect_names_key({{"hybrid_layer_pattern", "M*-"}, {"depth", 4}}, "depth");
  expect_names_key({{"hybrid_layer_pattern", "M*-"}, {"block_pattern", "TTT"}}, "block_pattern");
  expect_names_key({{"hybrid_layer_pattern", "M*-"}, {"mamba_use_mlp", true}}, "mamba_use_mlp");
  expect_names_key({{"hybrid_layer_pattern", "MM*-"}, {"hybrid_attention_ratio", 0.5}}, "hybrid_layer_pattern");
  expect_names_key({{"depth", 4}, {"hybrid_attention_ratio", 1.5}}, "hybrid_attention_ratio");
  expect_names_key({{"depth", 4}, {"hybrid_mlp_ratio", -0.5}}, "hybrid_mlp_ratio");
  expect_names_key({{"depth", 4}, {"hybrid_attention_ratio", 0.6}, {"hybrid_mlp_ratio", 0.6}}, "hybrid_mlp_ratio");
  expect_names_key({{"depth", 4}, {"hybrid_attention_ratio", 0.25}, {"block_pattern", "TTTT"}}, "block_pattern");
}

// nanochat's window_pattern, tiled over the T and S layers with the last one always full.
TEST(WindowPattern, TilesOverTheAttentionLayersLastFull) {
  EXPECT_EQ(load({{"depth", 8}, {"window_pattern", "SSSL"}}).model.block_pattern, "SSSTSSST");
  const auto c = load({{"depth", 6}, {"block_pattern", "TMTMTT"}, {"window_pattern", "sl"}});
  EXPECT_EQ(c.model.block_pattern, "SMTMST");
  expect_reloads_to_itself(c);
  // It decides every attention layer, S ones included; other kinds keep theirs.
  EXPECT_EQ(load({{"depth", 4}, {"block_pattern", "SS*-"}, {"window_pattern", "L"}}).model.block_pattern, "TT*-");
  expect_names_key({{"depth", 2}, {"window_pattern", "SXL"}}, "window_pattern");
  expect_names_key({{"depth", 2}, {"block_pattern", "MM"}, {"window_pattern", "S"}}, "window_pattern");
}

TEST(AttnWindow, DefaultIsAQuarterOfTheSequenceUpToAMultipleOf128) {
  EXPECT_EQ(load({{"max_seq_len", 256}}).model.attn_window, 128);
  EXPECT_EQ(load({{"max_seq_len", 2048}}).model.attn_window, 512);
  EXPECT_EQ(load({{"max_seq_len", 4096}}).model.attn_window, 1024);
  EXPECT_EQ(load({{"max_seq_len", 2100}}).model.attn_window, 640);  // 525 → 640
  EXPECT_EQ(load({{"attn_window", 7}}).model.attn_window, 7);
  // Resolved once: a saved config keeps its window whatever max_seq_len a later run gives.
  const auto c = load({{"block_pattern", "S"}, {"depth", 1}});
  EXPECT_EQ(config_from_json(c.to_json(), {"max_seq_len=4096", "total_batch_size=4096"}).model.attn_window, 128);
  expect_names_key({{"attn_window", 0}}, "attn_window");
  expect_names_key({{"attn_window", -2}}, "attn_window");
}

}  // namespace
}  // namespace hgpt
