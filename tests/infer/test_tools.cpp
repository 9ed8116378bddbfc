// test_tools.cpp — build/sample and build/evaluate end to end on the checkpoints of a short
// base_train run: text comes out and reproduces, evaluate gives exactly the validation numbers
// base_train logged for the step, every bad input is one "error:" line and exit code 2, and
// weights damaged in ways the archive accepts are refused.
#include "hgpt/train/checkpoint.h"
#include "tests/train/train_test_util.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>

namespace hgpt::testing {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;
using namespace std::chrono_literals;

const std::string kSample = std::string(HGPT_BUILD_DIR) + "/sample";
const std::string kEvaluate = std::string(HGPT_BUILD_DIR) + "/evaluate";

ChildResult run_tool(const std::string& tool, std::vector<std::string> args) {
  args.insert(args.begin(), tool);
  return run_process(base_train_spec(std::move(args)), 120s);
}

void expect_user_error(const ChildResult& r, const std::string& needle) {
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.output.find("error: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(needle), std::string::npos) << "expected '" << needle << "' in: " << r.output;
}

// One base_train run (checkpoints and evals at steps 2 and 4), shared by every test here.
class TrainedRun : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    result_ =
        new ChildResult(run_base_train({"--num_iterations=4", "--eval_every=2", "--save_every=2", "--max_seq_len=64",
                                        "--total_batch_size=256", "--eval_tokens=1024", "--out_dir=" + dir_->path()}));
  }
  static void TearDownTestSuite() {
    delete result_;
    delete dir_;
  }
  void SetUp() override { ASSERT_TRUE(result_->ok()) << result_->describe(); }
  static std::string run_dir() { return dir_->path() + "/d2"; }
  // A copy of the run's checkpoint folder to break.
  static std::string copy_run(const std::string& name) {
    const std::string to = dir_->path() + "/" + name;
    fs::create_directories(to);
    for (const auto& e : fs::directory_iterator(run_dir()))
      fs::copy_file(e.path(), to + "/" + e.path().filename().string());
    return to;
  }

  static TempDir* dir_;
  static ChildResult* result_;
};
TempDir* TrainedRun::dir_ = nullptr;
ChildResult* TrainedRun::result_ = nullptr;

// ---------------------------------------------------------------------------------------------
// sample

TEST_F(TrainedRun, SampleStreamsTextAndReproducesWithTheSameSeed) {
  const std::vector<std::string> args = {"--checkpoint", run_dir(), "--prompt", "recall: k=7 ",
                                         "--max_tokens", "12",      "--seed",   "3"};
  const auto a = run_tool(kSample, args), b = run_tool(kSample, args);
  ASSERT_TRUE(a.ok()) << a.describe();
  EXPECT_EQ(a.output.rfind("recall: k=7 ", 0), 0u) << a.output;  // the prompt, then its continuation
  EXPECT_NE(a.output.find("step 4 of"), std::string::npos) << a.output;
  EXPECT_NE(a.output.find("tok/s"), std::string::npos) << a.output;
  auto text = [](const ChildResult& r) { return r.output.substr(0, r.output.find("sample: step")); };
  EXPECT_EQ(text(a), text(b));
}

TEST_F(TrainedRun, SampleSeveralSamplesAndAnOlderStep) {
  const auto r = run_tool(kSample, {"--checkpoint", run_dir(), "--step", "2", "--prompt", "the ", "--num_samples", "3",
                                    "--max_tokens", "5", "--temperature", "0"});
  ASSERT_TRUE(r.ok()) << r.describe();
  for (const char* header : {"--- sample 1\n", "--- sample 2\n", "--- sample 3\n"})
    EXPECT_NE(r.output.find(header), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("step 2 of"), std::string::npos) << r.output;
}

TEST_F(TrainedRun, SampleBadInputsAreUserErrors) {
  expect_user_error(run_tool(kSample, {"--checkpoint", dir_->path() + "/nowhere", "--prompt", "a"}), "does not exist");
  fs::create_directories(dir_->path() + "/empty");
  expect_user_error(run_tool(kSample, {"--checkpoint", dir_->path() + "/empty", "--prompt", "a"}),
                    "no complete checkpoint");
  expect_user_error(run_tool(kSample, {"--checkpoint", run_dir(), "--step", "3", "--prompt", "a"}), "meta_000003.json");

  const std::string torn = copy_run("torn");
  fs::resize_file(torn + "/model_000004.pt", fs::file_size(torn + "/model_000004.pt") / 2);
  expect_user_error(run_tool(kSample, {"--checkpoint", torn, "--prompt", "a"}), "model_000004.pt");

  const std::string foreign = copy_run("foreign");
  std::ofstream(foreign + "/model_000004.pt") << "not a checkpoint";
  expect_user_error(run_tool(kSample, {"--checkpoint", foreign, "--prompt", "a"}), "model_000004.pt");

  const std::string other_shape = copy_run("other_shape");  // meta says d_state 8, the weights have 16
  Json meta = train::read_meta(other_shape, 4);
  meta["config"]["mamba_d_state"] = 8;
  std::ofstream(other_shape + "/meta_000004.json") << meta.dump();
  expect_user_error(run_tool(kSample, {"--checkpoint", other_shape, "--prompt", "a"}), "another config");

  const std::string bad_meta = copy_run("bad_meta");
  std::ofstream(bad_meta + "/meta_000004.json") << "{\"step\": 4";
  expect_user_error(run_tool(kSample, {"--checkpoint", bad_meta, "--prompt", "a"}), "meta_000004.json");

  expect_user_error(
      run_tool(kSample, {"--checkpoint", run_dir(), "--prompt", "a", "--tokenizer", dir_->path() + "/no_tok"}),
      "no_tok");
  const std::string lost_tokenizer = copy_run("lost_tokenizer");  // the run's tokenizer folder is gone
  meta = train::read_meta(lost_tokenizer, 4);
  meta["config"]["tokenizer"] = dir_->path() + "/gone_tokenizer";
  std::ofstream(lost_tokenizer + "/meta_000004.json") << meta.dump();
  expect_user_error(run_tool(kSample, {"--checkpoint", lost_tokenizer, "--prompt", "a"}), "gone_tokenizer");

  expect_user_error(run_tool(kSample, {"--checkpoint", run_dir(), "--prompt", std::string(80, 'a')}), "max_seq_len");
  expect_user_error(run_tool(kSample, {"--checkpoint", run_dir(), "--prompt", "a", "--temperature", "-1"}),
                    "--temperature");
  expect_user_error(run_tool(kSample, {"--checkpoint", run_dir(), "--prompt", "a", "--top_p", "0"}), "--top_p");
  expect_user_error(run_tool(kSample, {"--checkpoint", run_dir(), "--prompt", "a", "--num_samples", "0"}),
                    "--num_samples");
  expect_user_error(run_tool(kSample, {"--checkpoint", run_dir()}), "--prompt");
}

// Extreme but valid flags: a temperature whose logits / temperature overflow samples greedily, and
// a max_tokens of INT64_MAX stops at max_seq_len.
TEST_F(TrainedRun, SampleExtremeFlagsWork) {
  const std::vector<std::string> base = {"--checkpoint", run_dir(), "--prompt", "recall: k=7 ", "--max_tokens", "12"};
  auto with = [&](std::vector<std::string> extra) {
    auto args = base;
    args.insert(args.end(), extra.begin(), extra.end());
    return run_tool(kSample, args);
  };
  const auto tiny = with({"--temperature", "1e-300"}), greedy = with({"--temperature", "0"});
  ASSERT_TRUE(tiny.ok()) << tiny.describe();
  ASSERT_TRUE(greedy.ok()) << greedy.describe();
  auto text = [](const ChildResult& r) { return r.output.substr(0, r.output.find("sample: ")); };
  EXPECT_EQ(text(tiny), text(greedy));
  const auto longest = run_tool(kSample, {"--checkpoint", run_dir(), "--prompt", "a", "--max_tokens",
                                          "9223372036854775807", "--temperature", "0"});
  ASSERT_TRUE(longest.ok()) << longest.describe();
  expect_user_error(with({"--num_samples", "1000000000000"}), "--num_samples");
  // A top_p below float's least positive number keeps the most likely token: the greedy text.
  const auto narrow = with({"--top_p", "1e-46"});
  ASSERT_TRUE(narrow.ok()) << narrow.describe();
  EXPECT_EQ(text(narrow), text(greedy));
}

// A copy of the run whose step-4 weights are edited and saved again, with the meta file's checksum
// updated to match, so that only the edit itself is wrong.
std::string run_with_edited_weights(const std::string& folder, const std::function<void(train::TensorDict&)>& edit) {
  const std::string model = folder + "/model_000004.pt";
  auto weights = train::load_tensor_dict(model);
  edit(weights);
  const std::string checksum = train::save_tensor_dict(model, weights);
  Json meta = train::read_meta(folder, 4);
  meta["model_checksum"] = checksum;
  std::ofstream(folder + "/meta_000004.json") << meta.dump();
  return folder;
}

// Weights that are damaged in ways the archive format accepts: NaN values, integer tensors of the
// right shapes, flipped bytes (caught by the meta file's checksum); and a weights path that is a folder.
TEST_F(TrainedRun, DamagedWeightsAreRefusedBySampleAndEvaluate) {
  const std::string nan = run_with_edited_weights(
      copy_run("nan_weights"), [](train::TensorDict& w) { w.front().second = w.front().second.clone().fill_(NAN); });
  const std::string ints = run_with_edited_weights(
      copy_run("int_weights"), [](train::TensorDict& w) { w.front().second = w.front().second.to(at::kLong); });
  const std::string flipped = copy_run("flipped");
  std::string bytes = read_text(flipped + "/model_000004.pt");
  for (size_t i = 0; i < 50; ++i) bytes[bytes.size() / 2 + i * 7] ^= 0x5a;
  write_text(flipped + "/model_000004.pt", bytes);
  const std::string folder = copy_run("weights_folder");
  fs::remove(folder + "/model_000004.pt");
  fs::create_directories(folder + "/model_000004.pt");
  for (const auto& [dir, needle] : std::vector<std::pair<std::string, std::string>>{
           {nan, "NaN or infinite"}, {ints, "holds Long values"}, {flipped, "checksum"}, {folder, "is a folder"}}) {
    expect_user_error(run_tool(kSample, {"--checkpoint", dir, "--prompt", "a"}), needle);
    expect_user_error(run_tool(kEvaluate, {"--checkpoint", dir}), needle);
  }
}

// ---------------------------------------------------------------------------------------------
// evaluate

// The JSON object on the last line of a tool's output.
Json last_json_line(const std::string& output) {
  const auto end = output.find_last_not_of('\n');
  const auto start = output.rfind('\n', end);
  return Json::parse(output.substr(start == std::string::npos ? 0 : start + 1, end + 1));
}

TEST_F(TrainedRun, EvaluateReproducesTheValidationBaseTrainLogged) {
  std::map<int64_t, Json> logged;
  for (const auto& j : read_jsonl(run_dir() + "/metrics.jsonl")) {
    if (j.contains("val_loss")) logged[j["step"].get<int64_t>()] = j;
  }
  for (int64_t step : {2, 4}) {
    const auto r = run_tool(kEvaluate, {"--checkpoint", run_dir(), "--step", std::to_string(step), "--json"});
    ASSERT_TRUE(r.ok()) << r.describe();
    const Json got = last_json_line(r.output);
    ASSERT_TRUE(logged.count(step)) << "base_train logged no evaluation at step " << step;
    EXPECT_EQ(got.at("step"), step);
    for (const auto& [key, value] : logged[step].items()) {  // val_loss, val_bpb, acc_*: bit for bit
      if (key == "step") continue;
      ASSERT_TRUE(got.contains(key)) << key << " missing in " << got.dump();
      EXPECT_EQ(got[key].get<double>(), value.get<double>()) << key << " at step " << step;
    }
  }
  // --seq_len at the training length is the same evaluation, bit for bit.
  const auto same_length = run_tool(kEvaluate, {"--checkpoint", run_dir(), "--seq_len", "64", "--json"});
  ASSERT_TRUE(same_length.ok()) << same_length.describe();
  for (const auto& [key, value] : logged[4].items()) {
    if (key != "step") EXPECT_EQ(last_json_line(same_length.output).at(key).get<double>(), value.get<double>()) << key;
  }
  const auto text = run_tool(kEvaluate, {"--checkpoint", run_dir()});
  ASSERT_TRUE(text.ok()) << text.describe();
  EXPECT_NE(text.output.find("step 4 | val loss "), std::string::npos) << text.output;
  // Fewer than one micro-batch (4 rows of 64 tokens): one micro-batch, and a note saying so.
  const auto one = run_tool(kEvaluate, {"--checkpoint", run_dir(), "--eval_tokens", "1", "--json"});
  ASSERT_TRUE(one.ok()) << one.describe();
  EXPECT_NE(one.output.find("note: eval_tokens 1 is counted in whole micro-batches of 4 rows of 64 tokens: 256 tokens"),
            std::string::npos)
      << one.output;
  // Fewer tokens: another (here smaller) count of validation tokens.
  const auto fewer = run_tool(kEvaluate, {"--checkpoint", run_dir(), "--eval_tokens", "256", "--json"});
  ASSERT_TRUE(fewer.ok()) << fewer.describe();
  EXPECT_LT(last_json_line(fewer.output).at("eval_tokens_counted").get<int64_t>(),
            last_json_line(run_tool(kEvaluate, {"--checkpoint", run_dir(), "--json"}).output)
                .at("eval_tokens_counted")
                .get<int64_t>());
}

// extrapolate_to=4 logs the final model at 2× and 4× the training length; evaluate --seq_len at
// those lengths (a separate process reading the checkpoint) gives the same numbers bit for bit.
TEST(LengthExtrapolation, BaseTrainRecordsEqualEvaluateAtThoseLengths) {
  TempDir dir;
  const auto trained = run_base_train({"--num_iterations=2", "--extrapolate_to=4", "--eval_tokens=1024",
                                       "--out_dir=" + dir.path()});  // max_seq_len 32, batch 4
  ASSERT_TRUE(trained.ok()) << trained.describe();
  EXPECT_NE(trained.output.find("at 4× the training length (128 tokens)"), std::string::npos) << trained.output;
  std::map<int64_t, Json> by_length;
  for (const auto& j : read_jsonl(dir.file("d2/metrics.jsonl"))) {
    if (j.contains("eval_seq_len")) by_length[j["eval_seq_len"].get<int64_t>()] = j;
  }
  ASSERT_EQ(by_length.size(), 2u);
  for (const auto& [length, logged] : by_length) {
    ASSERT_TRUE(length == 64 || length == 128) << length;
    const auto r = run_tool(kEvaluate, {"--checkpoint", dir.file("d2"), "--seq_len", std::to_string(length), "--json"});
    ASSERT_TRUE(r.ok()) << r.describe();
    const Json got = last_json_line(r.output);
    EXPECT_EQ(got.at("eval_seq_len"), length);
    for (const auto& [key, value] : logged.items()) {
      if (key == "step" || key == "eval_seq_len") continue;
      EXPECT_EQ(got.at(key).get<double>(), value.get<double>()) << key << " at length " << length;
    }
  }
  const auto refused = run_base_train({"--num_iterations=2", "--extrapolate_to=3", "--out_dir=" + dir.path()});
  EXPECT_EQ(refused.exit_code, 2) << refused.describe();
  EXPECT_NE(refused.output.find("'extrapolate_to'"), std::string::npos) << refused.output;
}

// document_boundaries "reset": the checkpoint keeps the setting and the resolved BOS (256 on the
// built-in corpus), so evaluate resets where training did and gives the logged numbers bit for bit
// (an evaluation that let the documents cross would differ), also at 2× the length.
TEST(DocumentResets, EvaluateResetsWhereTrainingDid) {
  TempDir dir;
  const auto trained = run_base_train({"--num_iterations=2", "--document_boundaries=reset", "--extrapolate_to=2",
                                       "--eval_tokens=1024", "--out_dir=" + dir.path()});
  ASSERT_TRUE(trained.ok()) << trained.describe();
  const Json meta = Json::parse(std::ifstream(dir.file("d2/meta_000002.json")));
  EXPECT_EQ(meta.at("config").at("document_boundaries"), "reset");
  EXPECT_EQ(meta.at("config").at("bos_token_id"), 256);
  int compared = 0;
  for (const auto& logged : read_jsonl(dir.file("d2/metrics.jsonl"))) {
    if (!logged.contains("val_loss") || logged.at("step") != 2) continue;
    const auto length = logged.value("eval_seq_len", int64_t{32});
    const auto r = run_tool(kEvaluate, {"--checkpoint", dir.file("d2"), "--seq_len", std::to_string(length), "--json"});
    ASSERT_TRUE(r.ok()) << r.describe();
    EXPECT_EQ(last_json_line(r.output).at("val_loss").get<double>(), logged.at("val_loss").get<double>())
        << "at length " << length;
    ++compared;
  }
  EXPECT_EQ(compared, 2);  // the training length and twice it
}

TEST_F(TrainedRun, EvaluateBadInputsAreUserErrors) {
  expect_user_error(run_tool(kEvaluate, {"--checkpoint", dir_->path() + "/nowhere"}), "does not exist");
  expect_user_error(run_tool(kEvaluate, {"--checkpoint", run_dir(), "--step", "5"}), "meta_000005.json");
  expect_user_error(run_tool(kEvaluate, {"--checkpoint", run_dir(), "--eval_tokens", "0"}), "--eval_tokens");
  // Bounded as base_train bounds eval_tokens: 2^34 + 1 is a typo, not hours of evaluation.
  expect_user_error(run_tool(kEvaluate, {"--checkpoint", run_dir(), "--eval_tokens", "17179869185"}),
                    "--eval_tokens must be in 1..17179869184");
  // Integers as typed: decimal only, and one past 64 bits is named as typed, not clamped.
  expect_user_error(run_tool(kEvaluate, {"--checkpoint", run_dir(), "--eval_tokens", "0x10"}),
                    "--eval_tokens needs a whole decimal number, got '0x10'");
  expect_user_error(run_tool(kEvaluate, {"--checkpoint", run_dir(), "--eval_tokens", " 5"}),
                    "--eval_tokens needs a whole decimal number, got ' 5'");
  expect_user_error(run_tool(kEvaluate, {"--checkpoint", run_dir(), "--eval_tokens", "99999999999999999999"}),
                    "--eval_tokens 99999999999999999999 is out of range");
  expect_user_error(run_tool(kEvaluate, {"--checkpoint", run_dir(), "--eval_tokens="}), "--eval_tokens= has no value");
  // CLI11 reads a leading zero as octal (012 = step 10): refused, naming the number meant.
  expect_user_error(run_tool(kEvaluate, {"--checkpoint", run_dir(), "--step", "012"}),
                    "--step 012 has a leading zero, which this parser reads as octal; write 12");
  expect_user_error(run_tool(kEvaluate, {"--checkpoint", run_dir(), "--step", "000004"}), "write 4");
  // A --tokenizer that is no tokenizer folder says what one is.
  expect_user_error(run_tool(kEvaluate, {"--checkpoint", run_dir(), "--tokenizer", run_dir() + "/metrics.jsonl"}),
                    "is a file, not a folder (a tokenizer is a folder holding tokenizer.json and tokenizer.tiktoken");
  expect_user_error(run_tool(kEvaluate, {"--checkpoint", run_dir(), "--tokenizer", dir_->path() + "/no_tok"}),
                    "tokenizer folder '" + dir_->path() + "/no_tok' does not exist");
  expect_user_error(run_tool(kEvaluate, {"--checkpoint", run_dir(), "--tokenizer", run_dir()}),
                    "holds no tokenizer.json");
  expect_user_error(run_tool(kEvaluate, {"--checkpoint", run_dir(), "--seq_len", "0"}), "--seq_len");
  expect_user_error(run_tool(kEvaluate, {"--checkpoint", run_dir(), "--data", dir_->path() + "/no_shards"}),
                    "no_shards");
  const std::string torn = copy_run("torn_eval");
  fs::resize_file(torn + "/model_000002.pt", 100);
  expect_user_error(run_tool(kEvaluate, {"--checkpoint", torn, "--step", "2"}), "model_000002.pt");
  expect_user_error(run_tool(kEvaluate, {"--checkpoint", run_dir(), "--device", "tpu"}), "--device");
}

}  // namespace
}  // namespace hgpt::testing
