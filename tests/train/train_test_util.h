// train_test_util.h — helpers of the training-loop tests: tiny configs, running build/base_train,
// and reading metrics.jsonl back (temporary folders and whole files: tests/support/files.h).
#pragma once

#include "hgpt/config.h"
#include "tests/support/files.h"
#include "tests/support/spawn.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace hgpt::testing {

inline const std::string kBaseTrain = std::string(HGPT_BUILD_DIR) + "/base_train";
inline const std::string kTinyConfig = std::string(HGPT_SOURCE_DIR) + "/configs/tiny_cpu.json";

// Overrides of configs/tiny_cpu.json for a model that trains in milliseconds per step on a CPU:
// depth 2 hybrid (T then M), width 64, 2 heads of 32, seq 32, batch 4, no accumulation, no
// evaluation until the end, no samples, a log line every step, and nanochat's learning rates
// (tiny_cpu.json lowers them for its longer run; these tests want fast, large steps).
inline std::vector<std::string> tiny_overrides(const std::string& pattern = "TM") {
  return {"depth=2",         "aspect_ratio=32",     "head_dim=32",          "block_pattern=" + pattern,
          "max_seq_len=32",  "device_batch_size=4", "total_batch_size=128", "eval_every=-1",
          "eval_tokens=256", "sample_every=-1",     "save_every=-1",        "device=cpu",
          "matrix_lr=0.02",  "embedding_lr=0.2",    "log_every=1"};  // tests read the per-step lines
}

inline Config tiny_config(std::vector<std::string> extra = {}, const std::string& pattern = "TM") {
  auto overrides = tiny_overrides(pattern);
  overrides.insert(overrides.end(), extra.begin(), extra.end());
  return load_config(kTinyConfig, overrides);
}

// The argv of base_train on configs/tiny_cpu.json with the tiny overrides, then `extra` ("--key=value").
inline std::vector<std::string> base_train_argv(const std::vector<std::string>& extra,
                                                const std::string& pattern = "TM") {
  std::vector<std::string> argv = {kBaseTrain, kTinyConfig};
  for (const auto& o : tiny_overrides(pattern)) argv.push_back("--" + o);
  argv.insert(argv.end(), extra.begin(), extra.end());
  return argv;
}

// Environment of a base_train child: a single process whatever launcher runs the tests, and one
// intra-op thread unless `threads` says otherwise (see one_thread.cpp for why).
inline ChildSpec base_train_spec(std::vector<std::string> argv, int threads = 1) {
  ChildSpec spec;
  spec.argv = std::move(argv);
  spec.unset_env = launcher_variables();
  if (threads > 0) spec.env = {{"OMP_NUM_THREADS", std::to_string(threads)}};
  return spec;
}

inline ChildResult run_base_train(const std::vector<std::string>& extra, const std::string& pattern = "TM",
                                  std::chrono::seconds timeout = std::chrono::seconds(300)) {
  return run_process(base_train_spec(base_train_argv(extra, pattern)), timeout);
}

// A block pattern as a gtest parameter name ([A-Za-z0-9_] only): '*' → A, '-' → F.
inline std::string pattern_test_name(std::string pattern) {
  for (auto& ch : pattern) ch = ch == '*' ? 'A' : ch == '-' ? 'F' : ch;
  return pattern;
}

// Every line of a JSONL file, parsed.
inline std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  std::vector<nlohmann::json> out;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  }
  return out;
}

// The training-step records (those with a "loss" key) of a metrics file, in file order.
inline std::vector<nlohmann::json> step_records(const std::string& metrics_path) {
  std::vector<nlohmann::json> out;
  for (auto& j : read_jsonl(metrics_path)) {
    if (j.contains("loss")) out.push_back(j);
  }
  return out;
}

}  // namespace hgpt::testing
