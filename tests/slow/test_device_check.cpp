// test_device_check.cpp — scripts/device_check.sh in its CPU mode (--dry-run) on this build: every
// step runs or is skipped with a reason, each leaves a JSON line, the benchmarks' JSON lines and
// the table are written; and a spent budget skips the steps but still leaves the results.
#include "tests/train/train_test_util.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <map>
#include <string>

namespace hgpt::testing {
namespace {

const std::string kScript = std::string(HGPT_SOURCE_DIR) + "/scripts/device_check.sh";

std::vector<nlohmann::json> json_lines(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line[0] == '{') out.push_back(nlohmann::json::parse(line));
  }
  return out;
}

ChildResult run_check(const std::string& results, const std::vector<std::string>& extra) {
  ChildSpec spec;
  spec.argv = {"bash", kScript, "--dry-run"};
  spec.argv.insert(spec.argv.end(), extra.begin(), extra.end());
  spec.argv.push_back(results);
  spec.env = {{"HGPT_BUILD_DIR", HGPT_BUILD_DIR}};
  return run_process(spec, std::chrono::minutes(10));
}

TEST(DeviceCheck, DryRunRunsEveryStepOrSkipsItWithAReason) {
  TempDir dir;
  const auto r = run_check(dir.path(), {});
  ASSERT_TRUE(r.ok()) << r.describe();
  std::map<std::string, nlohmann::json> steps;
  for (const auto& j : json_lines(dir.path() + "/results.jsonl")) steps[j.at("step")] = j;
  for (const char* name : {"build", "gpu_tests", "bench_scan", "step_transformer_d20", "step_mamba_d20",
                           "step_hybrid_alternating_d20", "step_rtx3070_d16", "base_train_world1"}) {
    ASSERT_TRUE(steps.count(name)) << name << " missing\n" << r.output;
    EXPECT_EQ(steps[name]["status"], "ok") << name << ": " << steps[name].dump();
  }
  for (const char* name : {"sanitizer_memcheck", "sanitizer_racecheck", "sanitizer_synccheck"}) {
    ASSERT_TRUE(steps.count(name)) << name;
    EXPECT_EQ(steps[name]["status"], "skipped");
    EXPECT_NE(steps[name]["detail"].get<std::string>().find("GPU"), std::string::npos);
  }
  const auto scan = json_lines(dir.path() + "/bench_scan.jsonl");
  ASSERT_FALSE(scan.empty());
  EXPECT_GT(scan.back()["fwd_ms"].get<double>(), 0.0);
  for (const char* cfg : {"transformer_d20", "mamba_d20", "hybrid_alternating_d20", "rtx3070_d16"}) {
    const auto step = json_lines(dir.path() + "/step_" + cfg + ".jsonl");
    ASSERT_EQ(step.size(), 1u) << cfg;
    EXPECT_GT(step[0]["peak_memory_bytes"].get<int64_t>(), 0) << cfg;
    EXPECT_GT(step[0]["estimated_memory_bytes"].get<int64_t>(), 0) << cfg;
  }
  std::ifstream table(dir.path() + "/table.md");
  const std::string text((std::istreambuf_iterator<char>(table)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("| base_train_world1 | ok |"), std::string::npos) << text;
  EXPECT_NE(text.find("peak MiB"), std::string::npos) << text;
}

TEST(DeviceCheck, ASpentBudgetSkipsStepsAndStillLeavesResults) {
  TempDir dir;
  const auto r = run_check(dir.path(), {"--budget", "5"});
  EXPECT_EQ(r.exit_code, 1) << r.describe();  // nothing built: the run stops after the build step
  const auto lines = json_lines(dir.path() + "/results.jsonl");
  ASSERT_EQ(lines.size(), 1u) << r.output;
  EXPECT_EQ(lines[0]["step"], "build");
  EXPECT_EQ(lines[0]["status"], "skipped");
  EXPECT_NE(lines[0]["detail"].get<std::string>().find("budget"), std::string::npos);
}

}  // namespace
}  // namespace hgpt::testing
