// process_group.h — the one place that knows the distributed backend: launch detection (torchrun /
// mpirun / single process), c10d rendezvous through a TCPStore, and the collectives the trainer needs
// (NCCL on CUDA, Gloo on CPU), each bounded by a timeout so that a dead rank never hangs the others.
//
// Every rank must call the same collectives in the same order (c10d's contract). A world of one
// process is a no-op group: no store, no threads, every collective is the identity.
#pragma once

#include <ATen/core/Tensor.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace hgpt::dist {

// Where this process sits in the job, as told by the launcher's environment variables.
struct DistEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  bool use_agent_store = false;     // torchrun's agent already hosts the TCPStore: every rank is a client
  std::string launcher = "single";  // "torchrun" | "mpirun" | "srun" | "single"
  int local_world_size = 1;         // ranks on this node (CPU threads are shared among them)
};

// Reads RANK / WORLD_SIZE / LOCAL_RANK / LOCAL_WORLD_SIZE (+ MASTER_ADDR, MASTER_PORT,
// TORCHELASTIC_USE_AGENT_STORE), else OMPI_COMM_WORLD_RANK / _SIZE / _LOCAL_RANK / _LOCAL_SIZE
// (+ MASTER_ADDR, MASTER_PORT), else, in an srun step (SLURM_PROCID and SLURM_STEP_ID),
// SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID / SLURM_NTASKS_PER_NODE with MASTER_ADDR defaulting to
// the first host of SLURM_STEP_NODELIST (else SLURM_JOB_NODELIST) and MASTER_PORT to 20000 +
// SLURM_JOB_ID mod 20000; else a single process. Missing partners, non-integers and out-of-range
// values throw hgpt::UserError naming the variable. Without a per-node count, all ranks are on one
// node.
DistEnv detect_env();

// The first host of a SLURM hostlist ("node[01-03,07]" → "node01"); UserError when malformed.
std::string first_slurm_host(const std::string& hostlist);

struct DistOptions {
  // Bound on rendezvous, on every collective and on store waits. A rank that dies makes the
  // others fail within about this long (Gloo usually notices a closed connection much sooner).
  std::chrono::milliseconds timeout{60000};
  std::string gloo_interface;              // network interface for Gloo (e.g. "eth0"); empty → see gloo_host
  std::string gloo_host;                   // address/hostname Gloo binds to; empty → loopback when MASTER_ADDR
                                           // is local, else this machine's hostname
  std::int64_t bucket_bytes = 25ll << 20;  // all_reduce_mean_ packs tensors into buckets of this size
  bool force_backend = false;              // build the real backend even for a world of 1 (tests, NCCL checks)
};

// A collective failed: a peer died, the network broke or the timeout passed. Not a user error:
// tools let it escape (exit code 1) after printing it.
struct DistError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class ProcessGroup {
 public:
  // world_size 1 → a no-op group (unless opts.force_backend). cuda → NCCL on cuda:local_rank (the
  // current CUDA device is set here, before any collective); else Gloo. Rank 0 hosts the TCPStore
  // unless env.use_agent_store.
  static std::shared_ptr<ProcessGroup> create(const DistEnv& env, bool cuda, const DistOptions& opts = {});
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int rank() const;
  int world_size() const;
  bool is_distributed() const;       // true when collectives really communicate
  const char* backend_name() const;  // "nccl", "gloo" or "none"

  void all_reduce_sum_(at::Tensor& t);  // in place; t must be contiguous
  // Averages the tensors across ranks in place: packs them (per dtype) into flat buckets of about
  // opts.bucket_bytes, one all-reduce per bucket, and writes the results back.
  void all_reduce_mean_(std::vector<at::Tensor>& tensors);
  void broadcast_(at::Tensor& t, int root = 0);  // in place; t must be contiguous
  void barrier();
  double all_reduce_sum(double v);
  double all_reduce_mean(double v);

  // Every rank publishes its resolved config (a flat JSON object as text) through the store; if
  // any rank's differs from rank 0's, every rank throws hgpt::UserError naming the first differing
  // key (in sorted key order) and both values.
  void check_same_config(const std::string& config_json);

  struct Impl;  // c10d objects stay out of this header

 private:
  explicit ProcessGroup(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Compares config JSON texts (one per rank, index = rank) against rank 0's; returns "" when they all
// agree, else the message check_same_config throws. Exposed for unit tests.
std::string describe_config_mismatch(const std::vector<std::string>& configs);

}  // namespace hgpt::dist
