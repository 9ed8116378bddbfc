// test_env.cpp — detect_env() on every launcher's variables (torchrun, Open MPI, srun), SLURM's
// hostlists, and the UserErrors for partial or inconsistent settings (each must name the
// offending variable).
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <optional>
#include <string>

#include "hgpt/dist/process_group.h"
#include "hgpt/errors.h"

namespace {

using hgpt::dist::detect_env;
using hgpt::dist::DistEnv;

const char* const kVars[] = {"RANK",
                             "WORLD_SIZE",
                             "LOCAL_RANK",
                             "MASTER_ADDR",
                             "MASTER_PORT",
                             "TORCHELASTIC_USE_AGENT_STORE",
                             "OMPI_COMM_WORLD_RANK",
                             "OMPI_COMM_WORLD_SIZE",
                             "OMPI_COMM_WORLD_LOCAL_RANK",
                             "OMPI_COMM_WORLD_LOCAL_SIZE",
                             "LOCAL_WORLD_SIZE",
                             "SLURM_PROCID",
                             "SLURM_NTASKS",
                             "SLURM_LOCALID",
                             "SLURM_STEP_ID",
                             "SLURM_NTASKS_PER_NODE",
                             "SLURM_STEP_TASKS_PER_NODE",
                             "SLURM_STEP_NODELIST",
                             "SLURM_JOB_NODELIST",
                             "SLURM_JOB_ID"};

// Clears every launcher variable for the test and restores the originals afterwards.
class DetectEnv : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* v : kVars) {
      const char* old = std::getenv(v);
      saved_[v] = old ? std::optional<std::string>(old) : std::nullopt;
      unsetenv(v);
    }
  }
  void TearDown() override {
    for (const auto& [name, value] : saved_) {
      if (value) {
        setenv(name.c_str(), value->c_str(), 1);
      } else {
        unsetenv(name.c_str());
      }
    }
  }
  static void set(const char* name, const char* value) { setenv(name, value, 1); }

  // detect_env must throw a UserError whose message contains `needle`.
  static void expect_user_error(const std::string& needle) {
    try {
      detect_env();
      FAIL() << "expected a UserError naming " << needle;
    } catch (const hgpt::UserError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  }

 private:
  std::map<std::string, std::optional<std::string>> saved_;
};

// Every field of a detected environment against the expected one.
void expect_env(const DistEnv& env, const DistEnv& want) {
  EXPECT_EQ(env.launcher, want.launcher);
  EXPECT_EQ(env.rank, want.rank);
  EXPECT_EQ(env.world_size, want.world_size);
  EXPECT_EQ(env.local_rank, want.local_rank);
  EXPECT_EQ(env.master_addr, want.master_addr);
  EXPECT_EQ(env.master_port, want.master_port);
  EXPECT_EQ(env.use_agent_store, want.use_agent_store);
}

TEST_F(DetectEnv, NothingSetIsASingleProcess) {
  expect_env(detect_env(), {0, 1, 0, "127.0.0.1", 29500, false, "single"});
}

TEST_F(DetectEnv, TorchrunVariables) {
  set("RANK", "5");
  set("WORLD_SIZE", "8");
  set("LOCAL_RANK", "1");
  set("MASTER_ADDR", "node0.cluster");
  set("MASTER_PORT", "12345");
  set("TORCHELASTIC_USE_AGENT_STORE", "True");
  expect_env(detect_env(), {5, 8, 1, "node0.cluster", 12345, true, "torchrun"});
}

TEST_F(DetectEnv, TorchrunWithoutLocalRankOrMasterUsesDefaults) {
  set("RANK", "1");
  set("WORLD_SIZE", "2");
  set("TORCHELASTIC_USE_AGENT_STORE", "False");
  // One node: the local rank is the rank.
  expect_env(detect_env(), {1, 2, 1, "127.0.0.1", 29500, false, "torchrun"});
}

TEST_F(DetectEnv, OpenMpiVariables) {
  set("OMPI_COMM_WORLD_RANK", "3");
  set("OMPI_COMM_WORLD_SIZE", "4");
  set("OMPI_COMM_WORLD_LOCAL_RANK", "1");
  set("MASTER_ADDR", "10.0.0.7");
  set("MASTER_PORT", "29600");
  expect_env(detect_env(), {3, 4, 1, "10.0.0.7", 29600, false, "mpirun"});
}

TEST_F(DetectEnv, TorchrunVariablesWinOverOpenMpi) {
  set("OMPI_COMM_WORLD_RANK", "3");
  set("OMPI_COMM_WORLD_SIZE", "4");
  set("RANK", "0");
  set("WORLD_SIZE", "2");
  const DistEnv env = detect_env();
  EXPECT_EQ(env.launcher, "torchrun");
  EXPECT_EQ(env.rank, 0);
  EXPECT_EQ(env.world_size, 2);
}

TEST_F(DetectEnv, RankWithoutWorldSize) {
  set("RANK", "0");
  expect_user_error("WORLD_SIZE");
}

TEST_F(DetectEnv, WorldSizeWithoutRank) {
  set("WORLD_SIZE", "2");
  expect_user_error("RANK is not");
}

TEST_F(DetectEnv, LocalRankAlone) {
  set("LOCAL_RANK", "0");
  expect_user_error("LOCAL_RANK");
}

TEST_F(DetectEnv, RankOutOfRange) {
  set("RANK", "2");
  set("WORLD_SIZE", "2");
  expect_user_error("RANK=2");
}

TEST_F(DetectEnv, NotAnInteger) {
  set("RANK", "1x");
  set("WORLD_SIZE", "2");
  expect_user_error("RANK='1x'");
  set("RANK", " 1");  // strtol would skip the blank
  expect_user_error("RANK=' 1'");
  set("RANK", "+1");
  expect_user_error("RANK='+1'");
}

TEST_F(DetectEnv, WorldSizeZero) {
  set("RANK", "0");
  set("WORLD_SIZE", "0");
  expect_user_error("WORLD_SIZE=0");
}

TEST_F(DetectEnv, LocalRankOutOfRange) {
  set("RANK", "0");
  set("WORLD_SIZE", "2");
  set("LOCAL_RANK", "-1");
  expect_user_error("LOCAL_RANK=-1");
}

TEST_F(DetectEnv, BadMasterPort) {
  set("RANK", "0");
  set("WORLD_SIZE", "2");
  set("MASTER_PORT", "70000");
  expect_user_error("MASTER_PORT=70000");
  set("MASTER_PORT", "http");
  expect_user_error("MASTER_PORT='http'");
}

TEST_F(DetectEnv, EmptyMasterAddr) {
  set("OMPI_COMM_WORLD_RANK", "0");
  set("OMPI_COMM_WORLD_SIZE", "2");
  set("MASTER_ADDR", "");
  expect_user_error("MASTER_ADDR");
}

// A task of an srun step: ranks from SLURM_*, the rendezvous at the step's first host on a port
// derived from the job id, this node's task count for the CPU threads.
TEST_F(DetectEnv, SrunVariables) {
  set("SLURM_PROCID", "3");
  set("SLURM_NTASKS", "8");
  set("SLURM_LOCALID", "1");
  set("SLURM_STEP_ID", "0");
  set("SLURM_NTASKS_PER_NODE", "4");
  set("SLURM_STEP_NODELIST", "gpu[07-08]");
  set("SLURM_JOB_NODELIST", "gpu[01-08]");
  set("SLURM_JOB_ID", "123456");
  const DistEnv env = detect_env();
  expect_env(env, {3, 8, 1, "gpu07", 23456, false, "srun"});
  EXPECT_EQ(env.local_world_size, 4);
  set("MASTER_ADDR", "10.0.0.5");  // the launcher's own choice wins
  set("MASTER_PORT", "29511");
  unsetenv("SLURM_NTASKS_PER_NODE");
  set("SLURM_STEP_TASKS_PER_NODE", "2(x4)");
  const DistEnv explicit_master = detect_env();
  expect_env(explicit_master, {3, 8, 1, "10.0.0.5", 29511, false, "srun"});
  EXPECT_EQ(explicit_master.local_world_size, 2);
}

// Inside an sbatch script but not in an srun step (no SLURM_STEP_ID): one process.
TEST_F(DetectEnv, SbatchScriptWithoutSrunIsASingleProcess) {
  set("SLURM_PROCID", "0");
  set("SLURM_NTASKS", "16");
  set("SLURM_JOB_ID", "42");
  expect_env(detect_env(), {0, 1, 0, "127.0.0.1", 29500, false, "single"});
}

TEST_F(DetectEnv, SrunPartialOrBadValues) {
  set("SLURM_PROCID", "0");
  set("SLURM_STEP_ID", "0");
  expect_user_error("SLURM_NTASKS");
  set("SLURM_NTASKS", "2");
  set("SLURM_PROCID", "2");
  expect_user_error("SLURM_PROCID=2");
  set("SLURM_PROCID", "1");
  set("SLURM_JOB_NODELIST", "node[a-b]");
  expect_user_error("SLURM_JOB_NODELIST");
  set("SLURM_JOB_NODELIST", "node[01-02");
  expect_user_error("unclosed");
  set("SLURM_JOB_NODELIST", "n1");
  set("SLURM_NTASKS_PER_NODE", "x");
  expect_user_error("SLURM_NTASKS_PER_NODE");
}

TEST(SlurmHostlist, FirstHost) {
  EXPECT_EQ(hgpt::dist::first_slurm_host("node[01-03,07]"), "node01");
  EXPECT_EQ(hgpt::dist::first_slurm_host("node[07,01-03]"), "node07");
  EXPECT_EQ(hgpt::dist::first_slurm_host("a1,b[2-3]"), "a1");
  EXPECT_EQ(hgpt::dist::first_slurm_host("rack[1-2]-n[001-004]"), "rack1-n001");
  EXPECT_EQ(hgpt::dist::first_slurm_host("gpu-node5"), "gpu-node5");
  EXPECT_EQ(hgpt::dist::first_slurm_host("x[3]"), "x3");
  EXPECT_THROW(hgpt::dist::first_slurm_host(""), hgpt::UserError);
  EXPECT_THROW(hgpt::dist::first_slurm_host("n[]"), hgpt::UserError);
}

TEST_F(DetectEnv, BadAgentStoreFlag) {
  set("RANK", "0");
  set("WORLD_SIZE", "1");
  set("TORCHELASTIC_USE_AGENT_STORE", "maybe");
  expect_user_error("TORCHELASTIC_USE_AGENT_STORE");
}

TEST_F(DetectEnv, OpenMpiRankWithoutSize) {
  set("OMPI_COMM_WORLD_RANK", "0");
  expect_user_error("OMPI_COMM_WORLD_SIZE");
}

TEST_F(DetectEnv, OpenMpiLocalRankOutOfRange) {
  set("OMPI_COMM_WORLD_RANK", "0");
  set("OMPI_COMM_WORLD_SIZE", "2");
  set("OMPI_COMM_WORLD_LOCAL_RANK", "2");
  expect_user_error("OMPI_COMM_WORLD_LOCAL_RANK=2");
}

}  // namespace
