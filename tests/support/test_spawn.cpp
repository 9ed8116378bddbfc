// test_spawn.cpp — the multi-process test helper itself (tests/support/spawn.h): exit codes,
// environment overrides and removals, merged output, the deadline, and a program that is missing.
#include <gtest/gtest.h>

#include <cstdlib>

#include "tests/support/spawn.h"

namespace {

using hgpt::testing::ChildSpec;
using hgpt::testing::run_process;
using hgpt::testing::run_processes;
using namespace std::chrono_literals;

ChildSpec sh(const std::string& script) {
  ChildSpec s;
  s.argv = {"/bin/sh", "-c", script};
  return s;
}

TEST(Spawn, ExitCodeEnvAndMergedOutput) {
  setenv("HGPT_SPAWN_DROPPED", "present", 1);
  auto s = sh("echo out=$HGPT_SPAWN_A; echo err=${HGPT_SPAWN_DROPPED:-gone} >&2; exit 4");
  s.env = {{"HGPT_SPAWN_A", "alpha"}};
  s.unset_env = {"HGPT_SPAWN_DROPPED"};
  const auto r = run_process(s, 20s);
  unsetenv("HGPT_SPAWN_DROPPED");
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_FALSE(r.timed_out);
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.output.find("out=alpha"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("err=gone"), std::string::npos) << r.output;
}

TEST(Spawn, ManyChildrenKeepTheirOrder) {
  std::vector<ChildSpec> specs;
  for (int i = 0; i < 3; ++i) specs.push_back(sh("echo child" + std::to_string(i) + "; exit " + std::to_string(i)));
  const auto rs = run_processes(specs, 20s);
  ASSERT_EQ(rs.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(rs[i].exit_code, i);
    EXPECT_EQ(rs[i].output, "child" + std::to_string(i) + "\n");
  }
  EXPECT_TRUE(rs[0].ok());
}

TEST(Spawn, DeadlineKillsTheChildAndItsDescendants) {
  // The shell's own child (sleep) holds the pipe too: killing the group must end both.
  const auto r = run_process(sh("echo started; sleep 30 & wait"), 500ms);
  EXPECT_TRUE(r.timed_out);
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.output.find("started"), std::string::npos);
}

TEST(Spawn, MissingProgram) {
  ChildSpec s;
  s.argv = {"/nonexistent/hgpt-no-such-binary"};
  const auto r = run_process(s, 5s);
  EXPECT_EQ(r.exit_code, 127);
}

TEST(Spawn, TorchrunSpecsSetRankVariables) {
  const auto specs = hgpt::testing::torchrun_specs({"/bin/true"}, 3, 4242, {{"X", "1"}});
  ASSERT_EQ(specs.size(), 3u);
  auto value = [](const ChildSpec& s, const std::string& k) {
    for (const auto& kv : s.env) {
      if (kv.first == k) return kv.second;
    }
    return std::string("(unset)");
  };
  EXPECT_EQ(value(specs[2], "RANK"), "2");
  EXPECT_EQ(value(specs[2], "WORLD_SIZE"), "3");
  EXPECT_EQ(value(specs[1], "LOCAL_RANK"), "1");
  EXPECT_EQ(value(specs[0], "MASTER_PORT"), "4242");
  EXPECT_EQ(value(specs[0], "X"), "1");
  auto s = specs[1];
  s.argv = {"/bin/sh", "-c", "echo $RANK/$WORLD_SIZE/$MASTER_ADDR"};
  EXPECT_EQ(run_process(s, 5s).output, "1/3/127.0.0.1\n");
}

TEST(Spawn, FreePortAndSelf) {
  const int p = hgpt::testing::free_tcp_port();
  EXPECT_GT(p, 0);
  EXPECT_LT(p, 65536);
  EXPECT_NE(hgpt::testing::self_exe().find("test_support"), std::string::npos);
  EXPECT_NE(hgpt::testing::find_in_path("sh"), "");
  EXPECT_EQ(hgpt::testing::find_in_path("hgpt-no-such-program"), "");
}

}  // namespace
