// spawn.cpp — run_processes() and friends (see spawn.h): posix_spawn with a merged output pipe per
// child, each child in its own process group so that a timeout can kill it with its descendants.
#include "tests/support/spawn.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <set>
#include <stdexcept>

extern char** environ;

namespace hgpt::testing {
namespace {

using Clock = std::chrono::steady_clock;

// The child's environment: ours, minus the unset and overridden names, plus the overrides.
std::vector<std::string> child_environment(const ChildSpec& spec) {
  std::set<std::string> drop(spec.unset_env.begin(), spec.unset_env.end());
  for (const auto& kv : spec.env) drop.insert(kv.first);
  std::vector<std::string> out;
  for (char** e = environ; e && *e; ++e) {
    const std::string entry(*e);
    const auto eq = entry.find('=');
    if (eq != std::string::npos && drop.count(entry.substr(0, eq))) continue;
    out.push_back(entry);
  }
  for (const auto& kv : spec.env) out.push_back(kv.first + "=" + kv.second);
  return out;
}

std::vector<char*> as_argv(std::vector<std::string>& strings) {
  std::vector<char*> ptrs;
  for (auto& s : strings) ptrs.push_back(s.data());
  ptrs.push_back(nullptr);
  return ptrs;
}

struct Running {
  pid_t pid = -1;
  int fd = -1;  // read end of the output pipe, -1 once closed
  bool reaped = false;
};

// Starts one child; on failure fills `result` and returns a Running with pid -1.
Running start_child(const ChildSpec& spec, ChildResult& result) {
  Running run;
  if (spec.argv.empty()) {
    result.exit_code = 127;
    result.output = "spawn: empty argv";
    return run;
  }
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("spawn: pipe2 failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 2);
  if (!spec.cwd.empty()) posix_spawn_file_actions_addchdir_np(&actions, spec.cwd.c_str());
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);  // own process group: killable with its descendants

  std::vector<std::string> args = spec.argv;
  std::vector<std::string> envs = child_environment(spec);
  auto argv = as_argv(args);
  auto envp = as_argv(envs);
  const int rc = posix_spawnp(&run.pid, argv[0], &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  close(fds[1]);
  if (rc != 0) {
    close(fds[0]);
    run.pid = -1;
    result.exit_code = 127;
    result.output = "spawn: cannot start " + spec.argv[0] + ": " + std::strerror(rc);
    return run;
  }
  fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK);
  run.fd = fds[0];
  return run;
}

// Reads what is available; closes the fd at end of file.
void drain(Running& run, ChildResult& result) {
  char buf[65536];
  while (run.fd >= 0) {
    const ssize_t n = read(run.fd, buf, sizeof buf);
    if (n > 0) {
      result.output.append(buf, static_cast<size_t>(n));
    } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
      close(run.fd);
      run.fd = -1;
    } else {
      return;  // nothing more for now
    }
  }
}

void record_status(int status, ChildResult& result) {
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.term_signal = WTERMSIG(status);
}

// Waits up to `ms` for any of the open pipes to have data.
void poll_pipes(std::vector<Running>& runs, int ms) {
  std::vector<pollfd> pfds;
  for (auto& r : runs) {
    if (r.fd >= 0) pfds.push_back({r.fd, POLLIN, 0});
  }
  if (pfds.empty()) {
    usleep(static_cast<useconds_t>(ms) * 1000);
    return;
  }
  poll(pfds.data(), pfds.size(), ms);
}

}  // namespace

std::string ChildResult::describe() const {
  std::string head = timed_out     ? "timed out (killed)"
                     : term_signal ? "killed by signal " + std::to_string(term_signal)
                                   : "exit " + std::to_string(exit_code);
  return head + "\n--- output ---\n" + output + "\n--------------";
}

std::vector<ChildResult> run_processes(const std::vector<ChildSpec>& specs, std::chrono::milliseconds timeout) {
  std::vector<ChildResult> results(specs.size());
  std::vector<Running> runs;
  for (size_t i = 0; i < specs.size(); ++i) runs.push_back(start_child(specs[i], results[i]));
  for (auto& r : runs) r.reaped = r.pid < 0;
  const auto deadline = Clock::now() + timeout;

  auto all_reaped = [&] {
    for (auto& r : runs) {
      if (!r.reaped) return false;
    }
    return true;
  };
  while (!all_reaped()) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      for (size_t i = 0; i < runs.size(); ++i) {
        if (runs[i].reaped) continue;
        kill(-runs[i].pid, SIGKILL);
        int status = 0;
        waitpid(runs[i].pid, &status, 0);
        runs[i].reaped = true;
        results[i].timed_out = true;
      }
      break;
    }
    poll_pipes(runs, static_cast<int>(std::min<long long>(left.count(), 100)));
    for (size_t i = 0; i < runs.size(); ++i) {
      drain(runs[i], results[i]);
      if (runs[i].reaped) continue;
      int status = 0;
      if (waitpid(runs[i].pid, &status, WNOHANG) == runs[i].pid) {
        record_status(status, results[i]);
        runs[i].reaped = true;
      }
    }
  }
  // Collect the last output; a leftover grandchild holding a pipe open gets a short grace only.
  const auto grace = Clock::now() + std::chrono::milliseconds(2000);
  for (;;) {
    bool open = false;
    for (size_t i = 0; i < runs.size(); ++i) {
      drain(runs[i], results[i]);
      open = open || runs[i].fd >= 0;
    }
    if (!open || Clock::now() > grace) break;
    poll_pipes(runs, 50);
  }
  for (auto& r : runs) {
    if (r.fd >= 0) close(r.fd);
  }
  return results;
}

ChildResult run_process(const ChildSpec& spec, std::chrono::milliseconds timeout) {
  return run_processes({spec}, timeout).front();
}

StreamingChild::StreamingChild(const ChildSpec& spec) {
  ChildResult failed;
  const Running run = start_child(spec, failed);
  if (run.pid < 0) throw std::runtime_error(failed.output);
  pid_ = run.pid;
  fd_ = run.fd;
}

StreamingChild::~StreamingChild() {
  if (!reaped_) {
    kill(-pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  if (fd_ >= 0) close(fd_);
}

bool StreamingChild::read_until(const std::string& needle, std::chrono::milliseconds limit) {
  const auto deadline = Clock::now() + limit;
  while (output.find(needle) == std::string::npos) {
    if (!read_some(deadline)) return false;
  }
  return true;
}

int StreamingChild::finish(std::chrono::milliseconds limit) {
  const auto deadline = Clock::now() + limit;
  while (read_some(deadline)) {}
  if (Clock::now() >= deadline) kill(-pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  reaped_ = true;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

bool StreamingChild::read_some(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  if (fd_ < 0 || left.count() <= 0) return false;
  pollfd p{fd_, POLLIN, 0};
  if (poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
  Running run;
  run.fd = fd_;
  ChildResult got;
  drain(run, got);  // everything available; closes the pipe at EOF
  fd_ = run.fd;
  output += got.output;
  return !got.output.empty();
}

const std::vector<std::string>& launcher_variables() {
  static const std::vector<std::string> names = {"RANK",
                                                 "WORLD_SIZE",
                                                 "LOCAL_RANK",
                                                 "LOCAL_WORLD_SIZE",
                                                 "OMPI_COMM_WORLD_RANK",
                                                 "OMPI_COMM_WORLD_SIZE",
                                                 "OMPI_COMM_WORLD_LOCAL_RANK",
                                                 "OMPI_COMM_WORLD_LOCAL_SIZE",
                                                 "TORCHELASTIC_USE_AGENT_STORE",
                                                 "SLURM_PROCID",
                                                 "SLURM_STEP_ID",
                                                 "SLURM_NTASKS",
                                                 "SLURM_LOCALID"};
  return names;
}

std::vector<ChildSpec> torchrun_specs(const std::vector<std::string>& argv, int world_size, int port,
                                      const std::vector<std::pair<std::string, std::string>>& extra_env) {
  std::vector<ChildSpec> specs;
  for (int r = 0; r < world_size; ++r) {
    ChildSpec s;
    s.argv = argv;
    s.unset_env = {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
                   "TORCHELASTIC_USE_AGENT_STORE"};
    s.env = {{"RANK", std::to_string(r)},       {"WORLD_SIZE", std::to_string(world_size)},
             {"LOCAL_RANK", std::to_string(r)}, {"LOCAL_WORLD_SIZE", std::to_string(world_size)},
             {"MASTER_ADDR", "127.0.0.1"},      {"MASTER_PORT", std::to_string(port)}};
    s.env.insert(s.env.end(), extra_env.begin(), extra_env.end());
    specs.push_back(std::move(s));
  }
  return specs;
}

ChildSpec mpirun_spec(const std::string& mpirun, const std::vector<std::string>& argv, int np,
                      const std::vector<std::pair<std::string, std::string>>& env) {
  ChildSpec spec;
  spec.argv = {mpirun, "--allow-run-as-root", "--oversubscribe", "-np", std::to_string(np)};
  for (const auto& kv : env) {
    spec.argv.push_back("-x");
    spec.argv.push_back(kv.first + "=" + kv.second);
  }
  spec.argv.insert(spec.argv.end(), argv.begin(), argv.end());
  spec.unset_env = {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "TORCHELASTIC_USE_AGENT_STORE"};
  return spec;
}

std::string self_exe() {
  char buf[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) throw std::runtime_error("self_exe: cannot read /proc/self/exe");
  return std::string(buf, static_cast<size_t>(n));
}

int free_tcp_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("free_tcp_port: socket failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;  // the kernel picks a free one
  socklen_t len = sizeof addr;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(fd);
    throw std::runtime_error("free_tcp_port: bind failed");
  }
  const int port = ntohs(addr.sin_port);
  close(fd);
  return port;
}

std::string find_in_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  if (!path) return "";
  std::string all(path);
  size_t start = 0;
  while (start <= all.size()) {
    const size_t end = std::min(all.find(':', start), all.size());
    const std::string dir = all.substr(start, end - start);
    const std::string candidate = (dir.empty() ? "." : dir) + "/" + program;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return "";
}

std::string get_env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : fallback;
}

}  // namespace hgpt::testing
