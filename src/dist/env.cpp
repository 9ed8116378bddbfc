// env.cpp — detect_env(): reads the launcher's environment variables (torchrun's, else Open MPI's,
// else none) into a DistEnv, rejecting partial or inconsistent settings with a UserError that
// names the variable, before any socket is opened.
#include "hgpt/dist/process_group.h"

#include <cctype>
#include <cerrno>
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

}  // namespace

DistEnv detect_env() {
  DistEnv env;
  if (get_env("RANK") || get_env("WORLD_SIZE")) {
    env.launcher = "torchrun";
    read_ranks(env, "RANK", "WORLD_SIZE", "LOCAL_RANK");
    if (const auto agent = get_env("TORCHELASTIC_USE_AGENT_STORE")) {
      env.use_agent_store = parse_bool("TORCHELASTIC_USE_AGENT_STORE", *agent);
    }
  } else if (get_env("LOCAL_RANK")) {
    throw UserError("LOCAL_RANK is set but RANK and WORLD_SIZE are not");
  } else if (get_env("OMPI_COMM_WORLD_RANK") || get_env("OMPI_COMM_WORLD_SIZE")) {
    env.launcher = "mpirun";
    read_ranks(env, "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK");
  } else {
    return env;  // a single process: defaults, nothing else is read
  }
  read_master(env);
  return env;
}

}  // namespace hgpt::dist
