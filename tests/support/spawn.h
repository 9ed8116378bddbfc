// spawn.h — test helper: run N child processes at once (any binary, any args, extra environment),
// wait for all of them with a deadline, and collect each one's exit status and merged
// stdout+stderr. Used by the multi-process tests (workers are this same test executable run with
// --gtest_filter, or build/base_train) and reusable by any test area.
#pragma once

#include <chrono>
#include <string>
#include <utility>
#include <vector>

namespace hgpt::testing {

struct ChildSpec {
  std::vector<std::string> argv;  // argv[0] is the program: a path, or a name looked up in PATH
  // Set (or override) in the child on top of this process's environment.
  std::vector<std::pair<std::string, std::string>> env;
  // Removed from the child's environment (e.g. a stale RANK); applied before `env`.
  std::vector<std::string> unset_env;
  std::string cwd;  // empty: inherit
};

// The variables a launcher (torchrun, Open MPI) sets to make a process one rank of a job: a child
// that must run alone whatever launched the tests has them removed (ChildSpec::unset_env).
const std::vector<std::string>& launcher_variables();

struct ChildResult {
  int exit_code = -1;      // the exit status when the child exited normally, else -1
  int term_signal = 0;     // the signal that ended it, else 0
  bool timed_out = false;  // still running at the deadline: killed (SIGKILL to its process group)
  std::string output;      // stdout and stderr, interleaved as written
  bool ok() const { return !timed_out && term_signal == 0 && exit_code == 0; }
  std::string describe() const;  // "exit 0" / "killed by signal 9" / "timed out", then the output
};

// Starts every child, then waits until all have ended or `timeout` passed since the start; those
// still running then are killed. Results are in the order of `specs`. A child that cannot be
// started reports exit_code 127 with the reason in `output`.
std::vector<ChildResult> run_processes(const std::vector<ChildSpec>& specs, std::chrono::milliseconds timeout);
ChildResult run_process(const ChildSpec& spec, std::chrono::milliseconds timeout);

// `world_size` specs running `argv`, with torchrun's variables RANK, WORLD_SIZE, LOCAL_RANK,
// LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1, MASTER_PORT=port, plus `extra_env`; Open MPI's rank
// variables are removed so the children see one launcher only.
std::vector<ChildSpec> torchrun_specs(const std::vector<std::string>& argv, int world_size, int port,
                                      const std::vector<std::pair<std::string, std::string>>& extra_env = {});

// One spec that runs `argv` as `np` ranks through Open MPI's launcher (`mpirun` = its path), allowing
// root and oversubscription as CI needs; each `env` entry is set in every rank through `-x`.
// torchrun's rank variables are removed so the ranks see Open MPI's only.
ChildSpec mpirun_spec(const std::string& mpirun, const std::vector<std::string>& argv, int np,
                      const std::vector<std::pair<std::string, std::string>>& env = {});

// One child whose merged output is read while it runs, e.g. to signal it at a chosen moment. It
// runs in its own process group; the destructor kills and reaps it if it is still running.
class StreamingChild {
 public:
  explicit StreamingChild(const ChildSpec& spec);  // std::runtime_error when it cannot start
  ~StreamingChild();
  StreamingChild(const StreamingChild&) = delete;
  StreamingChild& operator=(const StreamingChild&) = delete;

  // Reads output until it contains `needle` (true) or EOF / the deadline (false).
  bool read_until(const std::string& needle, std::chrono::milliseconds limit);
  // Reads to EOF and returns the exit status (−1 if killed by a signal or past the deadline).
  int finish(std::chrono::milliseconds limit);
  int pid() const { return pid_; }

  std::string output;  // everything read so far

 private:
  bool read_some(std::chrono::steady_clock::time_point deadline);  // false at EOF or the deadline

  int pid_ = -1;
  int fd_ = -1;
  bool reaped_ = false;
};

std::string self_exe();                                // this executable's path (/proc/self/exe)
int free_tcp_port();                                   // a loopback TCP port that was free just now
std::string find_in_path(const std::string& program);  // "" when not found
std::string get_env_or(const char* name, const std::string& fallback);

}  // namespace hgpt::testing
