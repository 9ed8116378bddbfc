// test_base_train.cpp — build/base_train end to end on tiny models: same seed → same losses, exact
// resume (from a copied checkpoint and after SIGINT), a second signal ending a long evaluation,
// resume refusals, metrics.jsonl and checkpoint contents, and the checkpoint read by Python's
// torch.load.
#include "hgpt/optim/schedule.h"
#include "hgpt/train/checkpoint.h"
#include "tests/train/train_test_util.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <cmath>
#include <cstdio>
#include <filesystem>

namespace fs = std::filesystem;

namespace hgpt::testing {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

// Same per-step losses (and EMA) to the bit; `from`: compare steps >= from only.
void expect_same_steps(const std::vector<Json>& a, const std::vector<Json>& b, int64_t from = 1) {
  std::vector<Json> fa, fb;
  for (const auto& j : a)
    if (j["step"].get<int64_t>() >= from) fa.push_back(j);
  for (const auto& j : b)
    if (j["step"].get<int64_t>() >= from) fb.push_back(j);
  ASSERT_EQ(fa.size(), fb.size());
  ASSERT_FALSE(fa.empty());
  for (size_t i = 0; i < fa.size(); ++i) {
    EXPECT_EQ(fa[i]["step"], fb[i]["step"]);
    EXPECT_EQ(fa[i]["loss"].get<double>(), fb[i]["loss"].get<double>()) << "step " << fa[i]["step"];
    EXPECT_EQ(fa[i]["loss_ema"].get<double>(), fb[i]["loss_ema"].get<double>()) << "step " << fa[i]["step"];
  }
}

// Both tensor dicts hold the same names with bitwise-equal tensors.
void expect_same_tensors(const std::string& path_a, const std::string& path_b) {
  const auto a = train::load_tensor_dict(path_a);
  const auto b = train::load_tensor_dict(path_b);
  ASSERT_EQ(a.size(), b.size()) << path_a << " vs " << path_b;
  std::map<std::string, at::Tensor> by_name(b.begin(), b.end());
  for (const auto& [name, t] : a) {
    ASSERT_TRUE(by_name.count(name)) << name << " missing from " << path_b;
    EXPECT_TRUE(at::equal(t, by_name[name])) << name << " differs between " << path_a << " and " << path_b;
  }
}

std::vector<std::string> tmp_files(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".tmp") out.push_back(e.path().string());
  return out;
}

// ---------------------------------------------------------------------------------------------

TEST(BaseTrain, SameSeedGivesBitwiseIdenticalLosses) {
  TempDir dir;
  const auto a = run_base_train({"--num_iterations=5", "--out_dir=" + dir.file("a")});
  const auto b = run_base_train({"--num_iterations=5", "--out_dir=" + dir.file("b")});
  ASSERT_TRUE(a.ok()) << a.describe();
  ASSERT_TRUE(b.ok()) << b.describe();
  const auto sa = step_records(dir.file("a/d2/metrics.jsonl"));
  ASSERT_EQ(sa.size(), 5u);
  expect_same_steps(sa, step_records(dir.file("b/d2/metrics.jsonl")));
  EXPECT_NE(sa.front()["loss"], sa.back()["loss"]);  // the runs really trained
  expect_same_tensors(dir.file("a/d2/model_000005.pt"), dir.file("b/d2/model_000005.pt"));
}

// N uninterrupted steps (checkpoint at k) vs a new process resuming from a copy of the step-k
// checkpoint alone: the same losses after k and the same final weights and optimizer state; for
// the default T M pattern, one with a Mamba-2 block, and sliding-window (window 5),
// attention-only and MLP-only layers.
class BaseTrainResume : public ::testing::TestWithParam<std::string> {};

TEST_P(BaseTrainResume, ReproducesUninterruptedRun) {
  TempDir dir;
  const std::vector<std::string> common = {"--num_iterations=6", "--save_every=3", "--eval_every=3",
                                           "--block_pattern=" + GetParam(), "--attn_window=5"};
  auto args = common;
  args.push_back("--out_dir=" + dir.file("full"));
  const auto full = run_base_train(args);
  ASSERT_TRUE(full.ok()) << full.describe();

  fs::create_directories(dir.file("resumed/d2"));
  for (const char* f : {"model_000003.pt", "optim_000003_rank0.pt", "meta_000003.json"})
    fs::copy_file(dir.file("full/d2/" + std::string(f)), dir.file("resumed/d2/" + std::string(f)));
  args = common;
  args.push_back("--out_dir=" + dir.file("resumed"));
  args.push_back("--resume=true");
  const auto resumed = run_base_train(args);
  ASSERT_TRUE(resumed.ok()) << resumed.describe();
  EXPECT_NE(resumed.output.find("resumed from"), std::string::npos) << resumed.output;

  const auto full_steps = step_records(dir.file("full/d2/metrics.jsonl"));
  const auto resumed_steps = step_records(dir.file("resumed/d2/metrics.jsonl"));
  ASSERT_EQ(resumed_steps.size(), 3u);  // steps 4..6 only
  EXPECT_EQ(resumed_steps.front()["step"], 4);
  expect_same_steps(full_steps, resumed_steps, 4);
  expect_same_tensors(dir.file("full/d2/model_000006.pt"), dir.file("resumed/d2/model_000006.pt"));
  expect_same_tensors(dir.file("full/d2/optim_000006_rank0.pt"), dir.file("resumed/d2/optim_000006_rank0.pt"));
  const auto val_a = train::read_meta(dir.file("full/d2"), 6).at("val");
  const auto val_b = train::read_meta(dir.file("resumed/d2"), 6).at("val");
  EXPECT_EQ(val_a.at("val_loss").get<double>(), val_b.at("val_loss").get<double>());
}

INSTANTIATE_TEST_SUITE_P(Patterns, BaseTrainResume, ::testing::Values("TM", "T2", "S-", "*2"),
                         [](const auto& info) { return pattern_test_name(info.param); });

TEST(BaseTrain, ResumeRefusesAnotherArchitecture) {
  TempDir dir;
  const auto first = run_base_train({"--num_iterations=1", "--out_dir=" + dir.path()});
  ASSERT_TRUE(first.ok()) << first.describe();
  for (const auto& [flag, key] :
       std::vector<std::pair<std::string, std::string>>{{"--block_pattern=MT", "block_pattern"},
                                                        {"--mamba_d_state=8", "mamba_d_state"},
                                                        {"--aspect_ratio=16", "aspect_ratio"}}) {
    const auto r = run_base_train({"--num_iterations=2", "--out_dir=" + dir.path(), "--resume=true", flag});
    EXPECT_EQ(r.exit_code, 2) << r.describe();
    EXPECT_NE(r.output.find("'" + key + "'"), std::string::npos) << flag << ": " << r.output;
  }
}

TEST(BaseTrain, ResumeWithoutCheckpointIsAUserError) {
  TempDir dir;
  const auto r = run_base_train({"--num_iterations=2", "--out_dir=" + dir.path(), "--resume=true"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.output.find("error: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(dir.path()), std::string::npos) << "the message should name the folder: " << r.output;
}

// ---------------------------------------------------------------------------------------------
// SIGINT: a child whose output is read while it runs (StreamingChild, tests/support/spawn.h).

// Interrupt after the first step line → checkpoint, resume hint, exit 130; resuming to s+3 steps
// then equals an uninterrupted s+3-step run (constant lr: warmdown 0, so the horizon may change).
TEST(BaseTrain, SigintWritesCheckpointAndResumes) {
  TempDir dir;
  const std::vector<std::string> flat_lr = {"--warmdown_ratio=0"};
  auto args = flat_lr;
  args.insert(args.end(), {"--num_iterations=5000", "--out_dir=" + dir.file("a")});
  StreamingChild child(base_train_spec(base_train_argv(args)));
  ASSERT_TRUE(child.read_until("step 00001/", 120s)) << child.output;
  ASSERT_EQ(kill(child.pid(), SIGINT), 0);
  const int code = child.finish(120s);
  ASSERT_EQ(code, 128 + SIGINT) << child.output;
  EXPECT_NE(child.output.find("interrupted at step"), std::string::npos) << child.output;
  EXPECT_NE(child.output.find("--resume=true"), std::string::npos) << child.output;

  const std::string run_dir = dir.file("a/d2");
  const auto saved = train::latest_checkpoint(run_dir);
  ASSERT_TRUE(saved.has_value()) << "no checkpoint after SIGINT";
  const int64_t s = *saved;
  ASSERT_GE(s, 1);
  ASSERT_LT(s, 5000);
  EXPECT_NE(child.output.find(run_dir), std::string::npos) << "the message should say where: " << child.output;
  EXPECT_TRUE(fs::exists(run_dir + "/" + train::model_file_name(s)));
  EXPECT_TRUE(fs::exists(run_dir + "/" + train::optim_file_name(s, 0)));
  EXPECT_TRUE(tmp_files(run_dir).empty());
  EXPECT_EQ(step_records(run_dir + "/metrics.jsonl").size(), static_cast<size_t>(s));

  const std::string total = "--num_iterations=" + std::to_string(s + 3);
  args = flat_lr;
  args.insert(args.end(), {total, "--out_dir=" + dir.file("a"), "--resume=true"});
  const auto resumed = run_base_train(args);
  ASSERT_TRUE(resumed.ok()) << resumed.describe();
  args = flat_lr;
  args.insert(args.end(), {total, "--out_dir=" + dir.file("b")});
  const auto straight = run_base_train(args);
  ASSERT_TRUE(straight.ok()) << straight.describe();

  expect_same_steps(step_records(run_dir + "/metrics.jsonl"), step_records(dir.file("b/d2/metrics.jsonl")));
  const std::string final_model = train::model_file_name(s + 3);
  expect_same_tensors(run_dir + "/" + final_model, dir.file("b/d2/" + final_model));
}

// A signal during a long evaluation says that the run stops after it, and a second one ends the
// run at once (the checkpoint files are written atomically, so nothing half-written is left).
TEST(BaseTrain, ASecondSignalEndsALongEvaluationAtOnce) {
  TempDir dir;
  StreamingChild child(base_train_spec(base_train_argv(
      {"--num_iterations=2", "--eval_every=1", "--eval_tokens=1000000000", "--out_dir=" + dir.path()})));
  ASSERT_TRUE(child.read_until("checkpoints and metrics:", 120s)) << child.output;
  ASSERT_EQ(kill(child.pid(), SIGINT), 0);
  ASSERT_TRUE(child.read_until("signal again to exit now", 30s)) << child.output;
  ASSERT_EQ(kill(child.pid(), SIGTERM), 0);
  EXPECT_EQ(child.finish(30s), 128 + SIGTERM) << child.output;
  EXPECT_NE(child.output.find("exiting now"), std::string::npos) << child.output;
  EXPECT_TRUE(tmp_files(dir.file("d2")).empty());
}

// ---------------------------------------------------------------------------------------------
// One short run with evals, samples and two checkpoints, shared by the tests that inspect it.

class FinishedRun : public ::testing::Test {
 protected:
  static constexpr int64_t kSteps = 4;
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    // seq 64 and 8 eval batches: enough whole answer spans for every task to be scored.
    result_ = new ChildResult(run_base_train({"--num_iterations=4", "--eval_every=2", "--save_every=2",
                                              "--sample_every=4", "--max_seq_len=64", "--total_batch_size=256",
                                              "--eval_tokens=2048", "--out_dir=" + dir_->path()}));
  }
  static void TearDownTestSuite() {
    delete result_;
    delete dir_;
  }
  void SetUp() override { ASSERT_TRUE(result_->ok()) << result_->describe(); }
  static std::string run_dir() { return dir_->path() + "/d2"; }

  static TempDir* dir_;
  static ChildResult* result_;
};
TempDir* FinishedRun::dir_ = nullptr;
ChildResult* FinishedRun::result_ = nullptr;

TEST_F(FinishedRun, MetricsHaveStepAndEvalRecords) {
  const auto records = read_jsonl(run_dir() + "/metrics.jsonl");
  const Config config = tiny_config({"num_iterations=4", "max_seq_len=64", "total_batch_size=256"});
  std::vector<int64_t> steps, evals;
  for (const auto& j : records) {
    ASSERT_TRUE(j.contains("step")) << j.dump();
    if (j.contains("loss")) {
      const int64_t step = j["step"];
      steps.push_back(step);
      for (const char* key : {"loss", "loss_ema", "lr_mult", "dt_ms", "tok_per_s"})
        EXPECT_TRUE(j.contains(key) && j[key].is_number()) << key << " missing in " << j.dump();
      EXPECT_TRUE(std::isfinite(j["loss"].get<double>()));
      EXPECT_GT(j["dt_ms"].get<double>(), 0.0);
      // tok/s is the step's tokens over its time.
      EXPECT_NEAR(j["tok_per_s"].get<double>() * j["dt_ms"].get<double>() / 1e3, config.train.total_batch_size,
                  1e-6 * config.train.total_batch_size);
      // The multiplier logged for step n is the schedule's value at 0-based step n − 1.
      EXPECT_DOUBLE_EQ(j["lr_mult"].get<double>(),
                       optim::lr_multiplier(step - 1, kSteps, config.train.warmup_ratio, config.train.warmdown_ratio,
                                            config.train.final_lr_frac));
      // The debiased EMA of one value, ((1−β)·loss)/(1−β): equal up to rounding.
      if (step == 1) EXPECT_DOUBLE_EQ(j["loss_ema"].get<double>(), j["loss"].get<double>());
    } else {
      evals.push_back(j["step"]);
      const double loss = j.at("val_loss"), bpb = j.at("val_bpb");
      // Byte-level: every target is one byte except <|bos|> (0 bytes), so bpb ≥ nats / ln 2.
      EXPECT_GE(bpb, loss / std::log(2.0));
      EXPECT_LT(bpb, 1.3 * loss / std::log(2.0));
      for (const char* key : {"acc_selective_copy", "acc_induction", "acc_assoc_recall"}) {
        ASSERT_TRUE(j.contains(key)) << key << " missing in " << j.dump();
        EXPECT_GE(j[key].get<double>(), 0.0);
        EXPECT_LE(j[key].get<double>(), 1.0);
      }
    }
  }
  EXPECT_EQ(steps, (std::vector<int64_t>{1, 2, 3, 4}));
  EXPECT_EQ(evals, (std::vector<int64_t>{0, 2, 4}));
  EXPECT_NE(result_->output.find("sample: "), std::string::npos) << "no greedy samples printed";
}

TEST_F(FinishedRun, CheckpointFilesAndMeta) {
  for (int64_t step : {2, 4}) {
    EXPECT_TRUE(fs::exists(run_dir() + "/" + train::model_file_name(step))) << step;
    EXPECT_TRUE(fs::exists(run_dir() + "/" + train::optim_file_name(step, 0))) << step;
    ASSERT_TRUE(fs::exists(run_dir() + "/" + train::meta_file_name(step))) << step;
    const Json meta = train::read_meta(run_dir(), step);
    EXPECT_EQ(meta.at("step"), step);
    const Json& c = meta.at("config");
    EXPECT_EQ(c.at("block_pattern"), Json::array({"T", "M"}));
    EXPECT_EQ(c.at("depth"), 2);
    EXPECT_EQ(c.at("max_seq_len"), 64);
    for (const char* key : {"mamba_d_state", "mamba_d_conv", "mamba_expand", "mamba_use_mlp", "seed", "matrix_lr"})
      EXPECT_TRUE(c.contains(key)) << key;
    EXPECT_EQ(meta.at("loader").at("train_position"), step);  // one micro-step per step here
    EXPECT_TRUE(meta.at("rng_state_cpu").is_string());
    EXPECT_FALSE(meta.at("rng_state_cpu").get<std::string>().empty());
    EXPECT_TRUE(meta.at("val").contains("val_loss"));
  }
  EXPECT_EQ(train::latest_checkpoint(run_dir()), std::optional<int64_t>(4));
  EXPECT_TRUE(tmp_files(run_dir()).empty());
  EXPECT_NE(result_->output.find("saved checkpoint"), std::string::npos);
}

// Python's plain torch.load (weights_only=True by default since torch 2.6) must read model_*.pt.
TEST_F(FinishedRun, CheckpointLoadsInPythonTorch) {
  const std::string python = std::string(HGPT_SOURCE_DIR) + "/.venv/bin/python";
  if (access(python.c_str(), X_OK) != 0) GTEST_SKIP() << python << " not found (scripts/setup.sh creates it)";
  const std::string model_path = run_dir() + "/" + train::model_file_name(kSteps);
  const std::string script_path = dir_->path() + "/load.py";
  {
    std::ofstream script(script_path);
    script << "import json, sys, torch\n"
              "d = torch.load(sys.argv[1], map_location='cpu')\n"
              "out = {'type': type(d).__name__,\n"
              "       'shapes': {k: list(v.shape) for k, v in d.items()},\n"
              "       'dtypes': sorted({str(v.dtype) for v in d.values()}),\n"
              "       'lm_head_3_5': d['lm_head.weight'][3, 5].item(),\n"
              "       'a_log_7_2': d['transformer.h.1.mixer.A_log'][7, 2].item()}\n"
              "print('RESULT ' + json.dumps(out))\n";
  }
  ChildSpec spec;
  spec.argv = {python, script_path, model_path};
  const auto r = run_process(spec, 120s);
  ASSERT_TRUE(r.ok()) << r.describe();
  const auto pos = r.output.find("RESULT ");
  ASSERT_NE(pos, std::string::npos) << r.output;
  const Json py = Json::parse(r.output.substr(pos + 7, r.output.find('\n', pos) - pos - 7));
  EXPECT_EQ(py["type"], "dict");
  EXPECT_EQ(py["dtypes"], Json::array({"torch.float32"}));

  const auto cpp = train::load_tensor_dict(model_path);
  std::map<std::string, at::Tensor> by_name(cpp.begin(), cpp.end());
  ASSERT_EQ(py["shapes"].size(), cpp.size());
  for (const auto& [name, t] : cpp) {
    ASSERT_TRUE(py["shapes"].contains(name)) << name;
    EXPECT_EQ(py["shapes"][name].get<std::vector<int64_t>>(), t.sizes().vec()) << name;
  }
  for (const char* name :
       {"transformer.wte.weight", "transformer.h.0.attn.c_q.weight", "transformer.h.0.mlp.c_fc.weight",
        "transformer.h.1.mixer.in_proj.weight", "transformer.h.1.mixer.dt_proj.bias", "lm_head.weight"})
    EXPECT_TRUE(by_name.count(name)) << name;
  EXPECT_EQ(py["lm_head_3_5"].get<double>(), by_name["lm_head.weight"][3][5].item<double>());
  EXPECT_EQ(py["a_log_7_2"].get<double>(), by_name["transformer.h.1.mixer.A_log"][7][2].item<double>());
  EXPECT_NE(by_name["lm_head.weight"][3][5].item<double>(), 0.0);  // trained away from its zero init
}

}  // namespace
}  // namespace hgpt::testing
