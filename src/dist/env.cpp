// env.cpp — detect_env(): reads the launcher's environment variables (torchrun's, else Open MPI's,
// else none) into a DistEnv, rejecting partial or inconsistent settings with a UserError that
// names the variable, before any socket is opened.
#include "hgpt/dist/process_group.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>

#include "hgpt/errors.h"

namespace hgpt::dist {
namespace {

std::optional<std::string> get_env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

// The whole value must be a decimal integer in [lo, hi]; anything else is the user's mistake.
int parse_int(const char* name, const std::string& text, long lo, long hi) {
  errno = 0;
  char* end = nullptr;
  const long v = std::strtol(text.c_str(), &end, 10);
  // strtol skips leading blanks and takes a '+': a rank variable is digits, perhaps after a '-'.
  const size_t first_digit = !text.empty() && text[0] == '-' ? 1 : 0;
  const bool whole = text.size() > first_digit && std::isdigit(static_cast<unsigned char>(text[first_digit])) &&
                     end == text.c_str() + text.size();
  if (!whole || errno == ERANGE) {
    throw UserError(std::string(name) + "='" + text + "' is not an integer");
  }
  if (v < lo || v > hi) {
    throw UserError(std::string(name) + "=" + text + " is out of range [" + std::to_string(lo) + ", " +
                    std::to_string(hi) + "]");
  }
  return static_cast<int>(v);
}

bool parse_bool(const char* name, const std::string& text) {
  if (text == "1" || text == "true" || text == "True" || text == "TRUE") return true;
  if (text.empty() || text == "0" || text == "false" || text == "False" || text == "FALSE") {
    return false;
  }
  throw UserError(std::string(name) + "='" + text + "' is not a boolean (use True or False)");
}

// Fills rank / world_size / local_rank from one launcher's three variables. Rank and size must
// come together; the local rank defaults to the rank (one node).
void read_ranks(DistEnv& env, const char* rank_var, const char* size_var, const char* local_var) {
  const auto rank = get_env(rank_var);
  const auto size = get_env(size_var);
  const auto local = get_env(local_var);
  if (!size) throw UserError(std::string(rank_var) + " is set but " + size_var + " is not");
  if (!rank) throw UserError(std::string(size_var) + " is set but " + rank_var + " is not");
  env.world_size = parse_int(size_var, *size, 1, 1 << 20);
  env.rank = parse_int(rank_var, *rank, 0, env.world_size - 1);
  env.local_rank = local ? parse_int(local_var, *local, 0, env.world_size - 1) : env.rank;
  env.local_world_size = env.world_size;  // unless the launcher says how many share this node
}

// MASTER_ADDR / MASTER_PORT apply to both launchers (mpirun forwards them with -x).
void read_master(DistEnv& env) {
  if (const auto addr = get_env("MASTER_ADDR")) {
    if (addr->empty()) throw UserError("MASTER_ADDR is set but empty");
    env.master_addr = *addr;
  }
  if (const auto port = get_env("MASTER_PORT")) {
    env.master_port = parse_int("MASTER_PORT", *port, 1, 65535);
  }
}

// The first host of a SLURM hostlist expression: "node[01-03,07],gpu5" → "node01" (the digits
// of a range keep their zero padding). Exposed through first_slurm_host for tests.
std::string first_host(const std::string& list, const char* var) {
  const size_t open = list.find('['), comma = list.find(',');
  if (open == std::string::npos || (comma != std::string::npos && comma < open)) {
    const std::string host = list.substr(0, comma);
    if (host.empty()) throw UserError(std::string(var) + "='" + list + "' holds no host name");
    return host;
  }
  const size_t close = list.find(']', open);
  if (close == std::string::npos) throw UserError(std::string(var) + "='" + list + "' has an unclosed '['");
  const std::string inside = list.substr(open + 1, close - open - 1);
  const std::string first = inside.substr(0, std::min(inside.find(','), inside.find('-')));
  const bool digits = !first.empty() && first.find_first_not_of("0123456789") == std::string::npos;
  if (!digits) throw UserError(std::string(var) + "='" + list + "': '[" + inside + "]' is not a list of number ranges");
  // A suffix after the bracket ("rack[1-2]-a") belongs to every host; a second bracket is expanded too.
  std::string rest = list.substr(close + 1);
  rest = rest.empty() || rest[0] == ',' ? "" : first_host(rest, var);
  return list.substr(0, open) + first + rest;
}

// srun's variables: rank, world and local rank, tasks on this node, and the rendezvous (MASTER_ADDR
// unset: the step's first host; MASTER_PORT unset: derived from the job id, the same on every task).
void read_slurm(DistEnv& env) {
  read_ranks(env, "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID");
  // "4", or per node as "4(x2),3": the first node's count (a job with equal nodes has one).
  for (const char* var : {"SLURM_NTASKS_PER_NODE", "SLURM_STEP_TASKS_PER_NODE"}) {
    if (const auto per_node = get_env(var)) {
      env.local_world_size = parse_int(var, per_node->substr(0, per_node->find_first_of("(,")), 1, env.world_size);
      break;
    }
  }
  const char* nodes_var = get_env("SLURM_STEP_NODELIST") ? "SLURM_STEP_NODELIST" : "SLURM_JOB_NODELIST";
  if (const auto nodes = get_env(nodes_var); nodes && !get_env("MASTER_ADDR"))
    env.master_addr = first_host(*nodes, nodes_var);
  if (const auto job = get_env("SLURM_JOB_ID"); job && !get_env("MASTER_PORT")) {
    env.master_port = 20000 + parse_int("SLURM_JOB_ID", *job, 0, INT32_MAX) % 20000;
  }
}

}  // namespace

std::string first_slurm_host(const std::string& hostlist) { return first_host(hostlist, "SLURM_JOB_NODELIST"); }

DistEnv detect_env() {
  DistEnv env;
  if (get_env("RANK") || get_env("WORLD_SIZE")) {
    env.launcher = "torchrun";
    read_ranks(env, "RANK", "WORLD_SIZE", "LOCAL_RANK");
    if (const auto local = get_env("LOCAL_WORLD_SIZE"))
      env.local_world_size = parse_int("LOCAL_WORLD_SIZE", *local, 1, env.world_size);
    if (const auto agent = get_env("TORCHELASTIC_USE_AGENT_STORE")) {
      env.use_agent_store = parse_bool("TORCHELASTIC_USE_AGENT_STORE", *agent);
    }
  } else if (get_env("LOCAL_RANK")) {
    throw UserError("LOCAL_RANK is set but RANK and WORLD_SIZE are not");
  } else if (get_env("OMPI_COMM_WORLD_RANK") || get_env("OMPI_COMM_WORLD_SIZE")) {
    env.launcher = "mpirun";
    read_ranks(env, "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK");
    if (const auto local = get_env("OMPI_COMM_WORLD_LOCAL_SIZE"))
      env.local_world_size = parse_int("OMPI_COMM_WORLD_LOCAL_SIZE", *local, 1, env.world_size);
  } else if (get_env("SLURM_PROCID") && get_env("SLURM_STEP_ID")) {  // a task of an srun step
    env.launcher = "srun";
    read_slurm(env);
  } else {
    return env;  // a single process: defaults, nothing else is read
  }
  read_master(env);
  return env;
}

}  // namespace hgpt::dist
