// test_base_train_cli.cpp — the config errors as users meet them: build/base_train on a bad file
// or flag must exit 2 with one "error: ..." line naming the key; and `--dry-run --json` must
// reproduce issue 2's parameter counts and carry the summary's keys.
#include "tests/support/files.h"
#include "tests/support/spawn.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace hgpt {
namespace {

using nlohmann::json;

const std::string kBaseTrain = HGPT_BUILD_DIR "/base_train";
const std::string kConfigs = HGPT_SOURCE_DIR "/configs";
// A bad config must be rejected before any work; a config accepted by mistake would start
// training, which this deadline cuts short (and the exit code check then fails).
constexpr std::chrono::seconds kDeadline{60};

// One temporary folder for the whole suite, removed at exit.
const testing::TempDir& temp() {
  static testing::TempDir dir;
  return dir;
}

// Writes `text` to a file of that name in the suite's folder; returns its path.
std::string write_temp(const std::string& name, const std::string& text) {
  const std::string path = temp().file(name);
  testing::write_text(path, text);
  return path;
}

testing::ChildSpec base_train_spec(const std::vector<std::string>& args) {
  testing::ChildSpec spec;
  spec.argv = {kBaseTrain};
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  // A single process whatever launcher runs the tests.
  spec.unset_env = testing::launcher_variables();
  spec.cwd = temp().path();  // anything written by mistake lands in the temp folder
  return spec;
}

testing::ChildResult run_base_train(const std::vector<std::string>& args) {
  return testing::run_process(base_train_spec(args), kDeadline);
}

// A small valid config (depth 2, hybrid) with `patch` merged over it.
std::string small_config(const std::string& name, const json& patch) {
  json j = {{"depth", 2},          {"aspect_ratio", 32}, {"head_dim", 32},         {"block_pattern", "TM"},
            {"vocab_size", 64},    {"max_seq_len", 16},  {"device_batch_size", 2}, {"total_batch_size", 32},
            {"num_iterations", 1}, {"device", "cpu"},    {"data", "synthetic"}};
  j.merge_patch(patch);
  return write_temp(name, j.dump(2));
}

// Expect exit code 2 and one line "error: ..." that contains every one of `needles`.
void expect_user_error(const testing::ChildResult& r, const std::vector<std::string>& needles) {
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_EQ(r.output.rfind("error: ", 0), 0u) << r.output;
  // One line: only the final newline.
  EXPECT_EQ(r.output.find('\n'), r.output.size() - 1) << r.output;
  for (const auto& n : needles)
    EXPECT_NE(r.output.find(n), std::string::npos) << "missing '" << n << "' in: " << r.output;
}

// One bad invocation and what its message must contain.
struct BadCase {
  std::vector<std::string> args;
  std::vector<std::string> needles;
};

// Runs the cases side by side (each base_train start costs ~0.5 s) and checks each.
void expect_user_errors(const std::vector<BadCase>& cases) {
  std::vector<testing::ChildSpec> specs;
  for (const auto& c : cases) specs.push_back(base_train_spec(c.args));
  const auto results = testing::run_processes(specs, kDeadline);
  for (size_t i = 0; i < cases.size(); ++i) {
    std::string args;
    for (const auto& a : cases[i].args) args += " " + a;
    SCOPED_TRACE("base_train" + args);
    expect_user_error(results[i], cases[i].needles);
  }
}

TEST(BaseTrainCli, SmallValidConfigPassesDryRun) {
  // The baseline the bad cases below differ from: it is accepted.
  const auto r = run_base_train({small_config("good.json", json::object()), "--dry-run"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
}

TEST(BaseTrainCli, UnknownKeySuggestsTheNearest) {
  const auto r = run_base_train({small_config("unknown.json", {{"matrx_lr", 0.01}})});
  expect_user_error(r, {"'matrx_lr'", "did you mean 'matrix_lr'"});
}

TEST(BaseTrainCli, WrongJsonTypeNamesKeyAndType) {
  expect_user_errors({
      {{small_config("type1.json", {{"depth", "2"}})}, {"'depth'", "integer"}},
      {{small_config("type2.json", {{"mamba_use_mlp", 1}})}, {"'mamba_use_mlp'", "true or false"}},
      {{small_config("type3.json", {{"device_batch_size", 2.5}})}, {"'device_batch_size'", "integer"}},
      {{small_config("type4.json", {{"data", 3}})}, {"'data'", "string"}},
      {{small_config("type5.json", {{"matrix_lr", "0.1"}})}, {"'matrix_lr'", "number"}},
      {{write_temp("array.json", "[1, 2]")}, {"object"}},
  });
}

TEST(BaseTrainCli, MalformedJsonGivesLineAndColumn) {
  // Line 3 is `  "x" 5`: the unexpected number sits in column 7.
  const auto a = write_temp("malformed1.json", "{\n  \"depth\": 2,\n  \"x\" 5\n}\n");
  // The second comma of `{"depth": 4,, }` is byte 13 of line 1.
  const auto b = write_temp("malformed2.json", "{\"depth\": 4,, }");
  expect_user_errors({{{a}, {"malformed1.json", "line 3, column 7"}}, {{b}, {"line 1, column 13"}}});
}

TEST(BaseTrainCli, PatternLengthMustEqualDepth) {
  expect_user_errors({
      {{small_config("len.json", {{"block_pattern", "TMT"}})}, {"block_pattern", "3 entries", "depth is 2"}},
      {{small_config("len2.json", {{"depth", 3}, {"block_pattern", nullptr}}), "--block_pattern=TM"},
       {"block_pattern", "depth is 3"}},
  });
}

TEST(BaseTrainCli, UnknownPatternEntry) {
  expect_user_error(run_base_train({small_config("entry.json", {{"block_pattern", json::array({"T", "X"})}})}),
                    {"block_pattern", "'X'"});
}

TEST(BaseTrainCli, MambaConvOutOfRange) {
  expect_user_errors({
      {{small_config("conv5.json", {{"mamba_d_conv", 5}})}, {"mamba_d_conv", "2..4"}},
      {{small_config("conv1.json", {{"mamba_d_conv", 1}})}, {"mamba_d_conv", "2..4"}},
  });
}

TEST(BaseTrainCli, NonPositiveSizes) {
  std::vector<BadCase> cases;
  for (const char* key : {"depth", "aspect_ratio", "head_dim", "vocab_size", "max_seq_len", "device_batch_size",
                          "mamba_expand", "mamba_d_state"}) {
    json patch = {{key, 0}};
    if (std::string(key) == "depth") patch["block_pattern"] = nullptr;
    cases.push_back({{small_config(std::string("zero_") + key + ".json", patch)}, {std::string("'") + key + "'"}});
  }
  cases.push_back({{small_config("neg_seq.json", {{"max_seq_len", -16}})}, {"'max_seq_len'", "-16"}});
  expect_user_errors(cases);
}

TEST(BaseTrainCli, HeadsThatDoNotDivide) {
  // depth 5 with the default aspect_ratio 64 and head_dim 128: model_dim 320 over 3 heads.
  const auto path = write_temp("heads.json", json{{"depth", 5}}.dump());
  expect_user_error(run_base_train({path}), {"head_dim", "320", "3"});
}

TEST(BaseTrainCli, TotalBatchSizeNotDivisible) {
  // 2 × 16 tokens per micro-step do not divide 48.
  expect_user_error(run_base_train({small_config("tbs.json", {{"total_batch_size", 48}})}), {"total_batch_size", "48"});
}

TEST(BaseTrainCli, MissingConfigFile) {
  const std::string missing = temp().path() + "/no_such_config.json";
  expect_user_error(run_base_train({missing}), {"no_such_config.json"});
}

TEST(BaseTrainCli, BadOverrides) {
  const auto good = small_config("good_for_overrides.json", json::object());
  expect_user_errors({
      {{good, "--detph=3"}, {"'detph'", "did you mean 'depth'"}},
      {{good, "--depth=two"}, {"'depth'", "integer"}},
      {{good, "--depth"}, {"--depth=VALUE"}},
      {{good, "--mamba_d_conv=7"}, {"mamba_d_conv"}},
      {{good, "--block_pattern=TQ"}, {"block_pattern", "'Q'"}},
      {{good, "--activation_checkpointing=some"}, {"activation_checkpointing", "\"mamba\"", "\"some\""}},
      {{good, "--newton_schulz_dtype=fp16"}, {"newton_schulz_dtype", "\"fp32\"", "\"fp16\""}},
  });
}

TEST(BaseTrainCli, BadCommandLine) {
  const auto good = small_config("good_for_flags.json", json::object());
  expect_user_errors({{{good, "--json"}, {"--json", "--dry-run"}}, {{good, good}, {"unexpected argument"}}});
  const auto none = run_base_train({});
  EXPECT_EQ(none.exit_code, 2) << none.describe();
  EXPECT_NE(none.output.find("no config file"), std::string::npos) << none.output;
}

// The JSON object on the dry run's stdout (the line that starts with '{').
json dry_run_json(const std::string& config) {
  const auto r = run_base_train({config, "--dry-run", "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  std::istringstream lines(r.output);
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty() && line[0] == '{') return json::parse(line);
  }
  ADD_FAILURE() << "no JSON object in: " << r.output;
  return json::object();
}

void expect_summary_keys(const json& s) {
  for (const char* key : {"parameters", "parameters_by_block", "flops_per_token", "num_iterations", "grad_accum_steps",
                          "estimated_memory_bytes"}) {
    EXPECT_TRUE(s.contains(key)) << key;
  }
  ASSERT_TRUE(s["parameters_by_block"].is_object());
  EXPECT_TRUE(s["parameters_by_block"].contains("T"));
  EXPECT_TRUE(s["parameters_by_block"].contains("M"));
}

TEST(BaseTrainCli, DryRunJsonTransformerD20) {
  const json s = dry_run_json(kConfigs + "/transformer_d20.json");
  expect_summary_keys(s);
  EXPECT_EQ(s["parameters"].get<int64_t>(), 560988160);
  EXPECT_EQ(s["parameters_by_block"]["M"].get<int64_t>(), 0);
  // 20 layers of attention 4·1280² plus MLP 8·1280².
  EXPECT_EQ(s["parameters_by_block"]["T"].get<int64_t>(), 20LL * 12 * 1280 * 1280);
  EXPECT_EQ(s["grad_accum_steps"].get<int64_t>(), 8);
  // nanochat's horizon: 20 tokens per parameter over 524288-token steps.
  EXPECT_EQ(s["num_iterations"].get<int64_t>(), 20LL * 560988160 / 524288);
  EXPECT_GT(s["flops_per_token"].get<double>(), 6.0 * 560988160 * 0.5);
  EXPECT_GT(s["estimated_memory_bytes"].get<int64_t>(), 3LL * 4 * 560988160);  // weights, grads, optim
}

TEST(BaseTrainCli, DryRunJsonMambaD20) {
  const json s = dry_run_json(kConfigs + "/mamba_d20.json");
  expect_summary_keys(s);
  EXPECT_EQ(s["parameters"].get<int64_t>(), 375388160);
  EXPECT_EQ(s["parameters_by_block"]["T"].get<int64_t>(), 0);
  EXPECT_EQ(s["parameters_by_block"]["M"].get<int64_t>(), 375388160 - 2LL * 65536 * 1280);
}

TEST(BaseTrainCli, DryRunHonoursOverrides) {
  const json s = dry_run_json(kConfigs + "/transformer_d20.json");
  const auto r = run_base_train({kConfigs + "/transformer_d20.json", "--dry-run", "--json", "--vocab_size=32768"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  const json o = json::parse(r.output.substr(r.output.find('{')));
  // Halving the vocabulary removes half of wte and half of lm_head.
  EXPECT_EQ(s["parameters"].get<int64_t>() - o["parameters"].get<int64_t>(), 2LL * 32768 * 1280);
}

// ---------------------------------------------------------------------------------------------
// Limits: sizes are bounded (a depth of 2^31 once hung for tens of seconds and 7 GB; 100000 gave
// negative counts), numbers beyond double or fp32 range and empty patterns are named errors.

TEST(ConfigLimits, SizesHaveUpperBounds) {
  expect_user_errors({
      {{small_config("depth_2e31.json", {{"depth", 2147483648LL}, {"block_pattern", nullptr}})}, {"'depth'", "1024"}},
      {{small_config("depth_1e5.json", {{"depth", 100000}, {"block_pattern", nullptr}})}, {"'depth'", "1024"}},
      {{small_config("width.json", {{"aspect_ratio", 1 << 20}})}, {"'aspect_ratio'", "65536"}},
      {{small_config("dim.json", {{"depth", 1024}, {"aspect_ratio", 128}, {"block_pattern", nullptr}})},
       {"'aspect_ratio'", "model_dim"}},
      {{small_config("vocab.json", {{"vocab_size", (1 << 24) + 1}})}, {"'vocab_size'", "16777216"}},
      {{small_config("seq.json", {{"max_seq_len", (1 << 20) + 16}})}, {"'max_seq_len'", "1048576"}},
      {{small_config("micro.json", {{"device_batch_size", 1 << 21}, {"total_batch_size", 1 << 25}})},
       {"'device_batch_size'", "micro-step"}},
      {{small_config("expand.json", {{"mamba_expand", 17}})}, {"'mamba_expand'", "16"}},
      {{small_config("iters.json", {{"num_iterations", 1000000000001LL}})}, {"'num_iterations'"}},
      {{small_config("timeout.json", {{"dist_timeout_s", 1LL << 40}})}, {"'dist_timeout_s'"}},
  });
}

TEST(ConfigLimits, IntegersBeyondInt64AreNotWrappedAround) {
  // 2^64 - 1 used to become -1 ("must be positive"), 2^63 became INT64_MIN.
  const auto path = write_temp("huge_depth.json", R"({"depth": 18446744073709551615})");
  expect_user_error(run_base_train({path}), {"huge_depth.json", "'depth'", "integer"});
}

TEST(ConfigLimits, NumbersBeyondDoubleOrFloatRange) {
  const auto beyond_double = write_temp("depth_1e400.json", R"({"depth": 1e400})");
  const auto good = small_config("good_for_lr.json", json::object());
  expect_user_errors({
      {{beyond_double}, {"depth_1e400.json", "1e400"}},
      {{good, "--matrix_lr=1e38"}, {"'matrix_lr'", "1e30"}},
      {{good, "--embedding_lr=1e300"}, {"'embedding_lr'"}},
      {{good, "--mamba_lr=3.5e38"}, {"'mamba_lr'"}},
      {{good, "--target_flops=1e31", "--num_iterations=-1"}, {"'target_flops'"}},
  });
}

TEST(ConfigLimits, DerivedIterationsAreBounded) {
  // A target of 1e30 FLOPs on a tiny model would be ~10^24 steps: named, not an int64 overflow.
  const auto r =
      run_base_train({small_config("flops.json", {{"num_iterations", -1}, {"target_flops", 1e30}}), "--dry-run"});
  expect_user_error(r, {"'target_flops'", "optimizer steps"});
}

TEST(ConfigLimits, EmptyBlockPatternIsAnError) {
  const auto good = small_config("good_for_pattern.json", json::object());
  const auto empty_string = small_config("pattern_empty.json", {{"block_pattern", ""}});
  const auto empty_list = small_config("pattern_list.json", {{"block_pattern", json::array()}});
  expect_user_errors({
      {{good, "--block_pattern="}, {"block_pattern", "empty"}},
      {{good, "--block_pattern=\"\""}, {"block_pattern", "empty"}},
      {{good, "--block_pattern=[]"}, {"block_pattern", "empty"}},
      {{empty_string}, {"pattern_empty.json", "block_pattern", "empty"}},
      {{empty_list}, {"pattern_list.json", "block_pattern", "empty"}},
  });
}

TEST(ConfigLimits, ModelTagMustStayInsideOutDir) {
  const auto good = small_config("good_for_tag.json", json::object());
  expect_user_errors({
      {{good, "--model_tag=.."}, {"'model_tag'", "\"..\""}},
      {{good, "--model_tag=."}, {"'model_tag'", "\".\""}},
      {{good, "--model_tag=a/b"}, {"'model_tag'", "'/'"}},
  });
}

TEST(ConfigLimits, LargestModelGivesExactEstimatesAndIsRefusedByMemory) {
  // depth 1024 × width 64 = model_dim 65536, all T: 12·d² per layer, vocab 64 for wte and lm_head.
  const auto path = small_config(
      "largest.json", {{"depth", 1024}, {"aspect_ratio", 64}, {"head_dim", 128}, {"block_pattern", nullptr}});
  const json s = dry_run_json(path);
  const int64_t d = 65536;
  EXPECT_EQ(s["parameters"].get<int64_t>(), 2 * 64 * d + 1024 * 12 * d * d);
  EXPECT_GT(s["estimated_memory_bytes"].get<int64_t>(), 3 * 4 * s["parameters"].get<int64_t>());
  // About 200 TB of weights: no machine running this test has that much memory.
  expect_user_error(run_base_train({path}), {"memory", "GiB", "depth"});
}

// The seed's RTX 3070 settings (seq 1024, device batch 4) fit an 8 GB card by the estimate, which
// --device=cuda computes without a GPU; checkpointing lowers it further.
TEST(BaseTrainCli, DryRunRtx3070FitsEightGigabytes) {
  auto estimate = [](const std::string& checkpointing) {
    const auto r = run_base_train({kConfigs + "/rtx3070_d16.json", "--dry-run", "--json", "--device=cuda",
                                   "--activation_checkpointing=" + checkpointing});
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    const json s = json::parse(r.output.substr(r.output.find('{')));
    EXPECT_EQ(s["tokens_per_micro_step"].get<int64_t>(), 4 * 1024);
    EXPECT_EQ(s["estimated_memory"]["activation_dtype"], "bf16");
    return s["estimated_memory_bytes"].get<int64_t>();
  };
  const int64_t none = estimate("none"), all = estimate("all");
  EXPECT_LE(none, static_cast<int64_t>(7.5 * (1LL << 30)));
  EXPECT_LT(estimate("mamba"), none);
  EXPECT_LT(estimate("transformer"), none);
  EXPECT_LT(all, estimate("transformer"));
}

}  // namespace
}  // namespace hgpt
