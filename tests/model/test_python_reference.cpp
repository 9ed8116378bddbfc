// test_python_reference.cpp — models saved as our checkpoints are, read back by Python's
// torch.load and run there by tests/model/layers_reference.py (plain PyTorch, float64, written
// from each layer kind's definition: attention under an explicit causal or windowed mask, the
// MLP, the Mamba-2 recurrence token by token): the same loss. Both the checkpoint's names and
// shapes and the layers' math are checked this way.
#include "hgpt/strings.h"
#include "hgpt/train/checkpoint.h"

#include "tests/model/model_test_util.h"
#include "tests/support/files.h"
#include "tests/support/spawn.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <fstream>
#include <string>

namespace hgpt::model {
namespace {

nlohmann::json rows(const at::Tensor& t) {
  nlohmann::json out = nlohmann::json::array();
  for (int64_t b = 0; b < t.size(0); ++b) {
    nlohmann::json row = nlohmann::json::array();
    for (int64_t i = 0; i < t.size(1); ++i) row.push_back(t[b][i].item<int64_t>());
    out.push_back(row);
  }
  return out;
}

// Our loss on 2 × 20 random tokens and the Python reference's on the saved checkpoint.
void expect_python_gives_our_loss(HybridGPT& model, const ModelConfig& config) {
  const std::string python = std::string(HGPT_SOURCE_DIR) + "/.venv/bin/python";
  if (access(python.c_str(), X_OK) != 0) GTEST_SKIP() << python << " not found (scripts/setup.sh creates it)";
  const auto tokens = at::randint(config.vocab_size, {2, 21}, at::TensorOptions().dtype(at::kLong));
  const auto idx = tokens.narrow(1, 0, 20), targets = tokens.narrow(1, 1, 20);
  double loss = 0;
  {
    at::NoGradGuard no_grad;
    loss = model->loss(idx, targets).item<double>();
  }
  testing::TempDir dir;
  const std::string model_path = dir.path() + "/model.pt", spec_path = dir.path() + "/spec.json";
  train::save_tensor_dict(model_path, train::module_state(*model));
  std::ofstream(spec_path) << nlohmann::json{
      {"tokens", rows(idx)},
      {"targets", rows(targets)},
      {"pattern", config.block_pattern},
      {"n_head", config.n_head()},
      {"n_kv_head", config.kv_heads()},
      {"attn_window", config.attn_window},
      {"d_state", config.mamba2_d_state},
      {"headdim", config.mamba2_headdim},
      {"ngroups", config.mamba2_ngroups},
      {"d_conv", config.mamba_d_conv},
      {"use_mlp",
       config.mamba_use_mlp}}.dump();
  testing::ChildSpec spec;
  spec.argv = {python, std::string(HGPT_SOURCE_DIR) + "/tests/model/layers_reference.py", model_path, spec_path};
  const auto r = testing::run_process(spec, std::chrono::seconds(300));
  ASSERT_TRUE(r.ok()) << r.describe();
  const auto pos = r.output.find("RESULT ");
  ASSERT_NE(pos, std::string::npos) << r.output;
  const auto py = nlohmann::json::parse(r.output.substr(pos + 7, r.output.find('\n', pos) - pos - 7));
  EXPECT_EQ(py["layers"], config.depth);
  EXPECT_NEAR(py["loss"].get<double>(), loss, 1e-5 * loss) << "Python " << py["loss"] << " vs ours " << loss;
}

TEST(PythonReference, Mamba2CheckpointGivesTheSameLoss) {
  const auto config = test::tiny_config({{"depth", 2},
                                         {"block_pattern", "22"},
                                         {"mamba2_headdim", 16},
                                         {"mamba2_ngroups", 2},
                                         {"mamba2_d_state", 16},
                                         {"mamba2_chunk_size", 8},
                                         {"max_seq_len", 32},
                                         {"total_batch_size", 64}});
  auto model = test::make_model(config);
  test::perturb_zero_init(model);
  {
    at::NoGradGuard no_grad;
    for (auto& item : model->named_parameters()) {
      if (ends_with(item.key(), "dt_bias")) item.value().add_(1.0);  // steps that decay the state visibly
    }
  }
  expect_python_gives_our_loss(model, config);
}

// Sliding-window (window 4 of 20 positions), attention-only and MLP-only layers with Mamba-2 and
// a Transformer block, GQA.
TEST(PythonReference, LayerKindsCheckpointGivesTheSameLoss) {
  const auto config = test::tiny_config({{"depth", 6},
                                         {"aspect_ratio", 8},
                                         {"block_pattern", "S*-2TS"},
                                         {"attn_window", 4},
                                         {"n_kv_head", 1},
                                         {"mamba2_headdim", 16},
                                         {"mamba2_d_state", 16},
                                         {"mamba2_chunk_size", 8},
                                         {"max_seq_len", 32},
                                         {"total_batch_size", 64}});
  ASSERT_EQ(config.n_head(), 3);
  auto model = test::make_model(config);
  test::perturb_zero_init(model);
  expect_python_gives_our_loss(model, config);
}

}  // namespace
}  // namespace hgpt::model
