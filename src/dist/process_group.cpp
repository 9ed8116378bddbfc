// process_group.cpp — ProcessGroup: rendezvous through a c10d TCPStore, one c10d backend (Gloo or
// NCCL, built in backends.h's factories), the collectives the trainer uses with bounded waits and
// clear errors, the Gloo reduce-scatter fallback, and the cross-rank config check.
#include "hgpt/dist/process_group.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <c10/util/Logging.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/Types.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>
#include <utility>

#include "backends.h"
#include "hgpt/errors.h"

namespace hgpt::dist {

using detail::BackendPtr;
using detail::StorePtr;

namespace {

// "rank 1 of 2": how every message about one rank's part in the group starts.
std::string rank_of(int rank, int world_size) {
  return "rank " + std::to_string(rank) + " of " + std::to_string(world_size);
}

}  // namespace

struct ProcessGroup::Impl {
  int rank = 0;
  int world_size = 1;
  DistOptions opts;
  bool cuda = false;
  std::string name = "none";
  StorePtr store;      // prefixed view of the TCPStore (null for the no-op group)
  BackendPtr backend;  // null for the no-op group
  int64_t config_rounds = 0;

  ~Impl() {
    // Let NCCL release its communicators in order rather than from a static destructor.
    if (backend) {
      try {
        backend->shutdown();
      } catch (...) {}
    }
  }

  bool active() const { return backend.defined(); }

  [[noreturn]] void fail(const std::string& what, const std::string& cause) const {
    throw DistError(what + " failed on " + rank_of(rank, world_size) + " (" + name + ", timeout " +
                    std::to_string(opts.timeout.count()) +
                    " ms); another rank probably exited or stopped responding: " + cause);
  }

  // Runs one collective to completion, translating backend failures into a DistError. Gloo's wait
  // gets a deadline a little past its own timeout (so Gloo's more precise message usually wins);
  // NCCL's wait only orders the CUDA stream and its watchdog enforces the timeout.
  void run(const std::string& what, const std::function<c10::intrusive_ptr<c10d::Work>()>& start) {
    try {
      auto work = start();
      if (cuda) {
        work->wait();
      } else {
        work->wait(opts.timeout + std::chrono::milliseconds(2000));
      }
    } catch (const c10::Error& e) {
      fail(what, e.what_without_backtrace());
    } catch (const std::exception& e) {
      fail(what, e.what());
    }
  }

  void check_device(const at::Tensor& t, const char* what) const {
    TORCH_CHECK(t.is_cuda() == cuda, what, ": tensor on ", t.device(), " but the process group is ", name,
                cuda ? " (tensors must be on CUDA)" : " (tensors must be on CPU)");
  }
};

namespace {

// Keys from an earlier torchrun restart may still sit in the agent's store: scope ours by attempt.
std::string store_prefix() {
  const char* attempt = std::getenv("TORCHELASTIC_RESTART_COUNT");
  return std::string("hgpt/attempt_") + (attempt && *attempt ? attempt : "0");
}

// MASTER_ADDR must name a host before any connection is tried: c10d reports a name that does not
// resolve only as a timeout, after retrying for the whole of it.
void require_resolvable(const std::string& host) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &found);
  if (found) ::freeaddrinfo(found);
  if (rc != 0)
    throw DistError("MASTER_ADDR '" + host + "' does not resolve (" + ::gai_strerror(rc) +
                    "): set it to rank 0's address or hostname, the same on every rank");
}

// Ends the process when a rendezvous step has not returned by its deadline. c10d's TCPStore client
// can wait in its handshake without a deadline (a MASTER_PORT whose program accepts and never
// answers); a thread cannot be cancelled, so past the deadline the message is printed and the
// process exits as a failed collective would (exit 1).
class RendezvousWatchdog {
 public:
  // `message` is made when the deadline passes (it may look at the network).
  RendezvousWatchdog(std::chrono::milliseconds limit, std::function<std::string()> message)
      : thread_([this, limit, message = std::move(message)] {
          std::unique_lock<std::mutex> lock(mutex_);
          if (!done_cv_.wait_for(lock, limit, [this] { return done_; })) {
            std::fprintf(stderr, "fatal: %s\n", message().c_str());
            std::fflush(stderr);
            std::_Exit(1);
          }
        }) {}
  ~RendezvousWatchdog() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      done_ = true;
    }
    done_cv_.notify_one();
    thread_.join();
  }

 private:
  std::mutex mutex_;
  std::condition_variable done_cv_;
  bool done_ = false;
  std::thread thread_;  // last: it starts once the members above exist
};

// c10d's TCPStore logs each failed connection attempt with the C++ stack trace of the exception it
// retries on (a dozen lines per try). Silenced while connecting: a failure reaches the user as one
// DistError line naming the address, the timeout and the cause.
class QuietC10dLogs {
 public:
  QuietC10dLogs() : saved_(FLAGS_caffe2_log_level) { FLAGS_caffe2_log_level = 3; }  // FATAL only
  ~QuietC10dLogs() { FLAGS_caffe2_log_level = saved_; }
  QuietC10dLogs(const QuietC10dLogs&) = delete;
  QuietC10dLogs& operator=(const QuietC10dLogs&) = delete;

 private:
  int saved_;
};

// "rank 1 of 2 could not reach the rendezvous store at host:port within 5000 ms (...)": why a rank
// failed to join the store, from c10d's error or from the watchdog.
std::string store_failure(const DistEnv& env, const DistOptions& opts) {
  const bool server = env.rank == 0 && !env.use_agent_store;
  const std::string role = server ? "host the rendezvous store on " : "reach the rendezvous store at ";
  return rank_of(env.rank, env.world_size) + " could not " + role + env.master_addr + ":" +
         std::to_string(env.master_port) + " within " + std::to_string(opts.timeout.count()) +
         " ms (every rank needs the same MASTER_ADDR/MASTER_PORT, rank 0 must be running and the port free)";
}

// What a fresh connection to host:port meets, for a rank that could not join the store there:
// 0 when something accepts it, else the errno (ECONNREFUSED: nobody listens, so rank 0 has not
// started or uses another MASTER_PORT; ETIMEDOUT: no reply within a second).
int connect_error(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0 || found == nullptr)
    return EHOSTUNREACH;
  int error = ETIMEDOUT;
  const int fd = ::socket(found->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd >= 0) {
    if (::connect(fd, found->ai_addr, found->ai_addrlen) == 0) {
      error = 0;
    } else if (errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      socklen_t len = sizeof(error);
      if (::poll(&p, 1, 1000) == 1) ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len);
    } else {
      error = errno;
    }
    ::close(fd);
  }
  ::freeaddrinfo(found);
  return error;
}

constexpr const char* kNobodyListens = "nobody is listening on that port";

StorePtr connect_store(const DistEnv& env, const DistOptions& opts) {
  require_resolvable(env.master_addr);
  c10d::TCPStoreOptions so;
  so.port = static_cast<std::uint16_t>(env.master_port);
  so.isServer = env.rank == 0 && !env.use_agent_store;
  so.timeout = opts.timeout;
  if (!env.use_agent_store) {
    so.numWorkers = static_cast<std::size_t>(env.world_size);
    so.waitWorkers = true;  // rank 0 returns only when every rank has joined (or the timeout)
  }
  try {
    QuietC10dLogs quiet;
    auto tcp = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
    return c10::make_intrusive<c10d::PrefixStore>(store_prefix(), tcp);
  } catch (const std::exception& e) {
    const std::string cause =
        dynamic_cast<const c10::Error*>(&e) ? static_cast<const c10::Error&>(e).what_without_backtrace() : e.what();
    const bool client = !so.isServer;
    const bool nobody = client && connect_error(env.master_addr, env.master_port) == ECONNREFUSED;
    throw DistError(store_failure(env, opts) + ": " + cause + (nobody ? std::string("; ") + kNobodyListens : ""));
  }
}

std::vector<uint8_t> to_bytes(const std::string& s) { return {s.begin(), s.end()}; }

nlohmann::json parse_config(const std::string& text, size_t rank) {
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  TORCH_CHECK(j.is_object(), "check_same_config: rank ", rank, "'s config is not a JSON object");
  return j;
}

}  // namespace

std::string describe_config_mismatch(const std::vector<std::string>& configs) {
  if (configs.empty()) return "";
  const auto ref = parse_config(configs[0], 0);
  for (size_t r = 1; r < configs.size(); ++r) {
    const auto other = parse_config(configs[r], r);
    std::set<std::string> keys;
    for (const auto& kv : ref.items()) keys.insert(kv.key());
    for (const auto& kv : other.items()) keys.insert(kv.key());
    for (const auto& key : keys) {
      const std::string a = ref.contains(key) ? ref[key].dump() : "(missing)";
      const std::string b = other.contains(key) ? other[key].dump() : "(missing)";
      if (a != b) {
        return "ranks disagree on the config: key '" + key + "' is " + a + " on rank 0 but " + b + " on rank " +
               std::to_string(r) + "; every rank must run the same config";
      }
    }
  }
  return "";
}

ProcessGroup::ProcessGroup(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ProcessGroup::~ProcessGroup() = default;

std::shared_ptr<ProcessGroup> ProcessGroup::create(const DistEnv& env, bool cuda, const DistOptions& opts) {
  TORCH_CHECK(env.world_size >= 1 && env.rank >= 0 && env.rank < env.world_size, "ProcessGroup::create: rank ",
              env.rank, " outside a world of ", env.world_size);
  TORCH_CHECK(opts.timeout.count() > 0, "ProcessGroup::create: timeout must be positive");
  TORCH_CHECK(opts.bucket_bytes > 0, "ProcessGroup::create: bucket_bytes must be positive");
  auto impl = std::make_unique<Impl>();
  impl->rank = env.rank;
  impl->world_size = env.world_size;
  impl->opts = opts;
  impl->cuda = cuda;
  if (env.world_size > 1 || opts.force_backend) {
    // Joining the store and building the backend each wait at most the timeout when the peers
    // speak c10d; a watchdog per stage bounds it when something else holds MASTER_PORT, at the
    // timeout plus a grace of at most 5 s, so that c10d's own error usually comes first (its
    // connection retries end up to a few seconds past the timeout); the store's watchdog says the same.
    const auto grace =
        std::min<std::chrono::milliseconds>(opts.timeout / 2 + std::chrono::seconds(2), std::chrono::seconds(5));
    const auto limit = opts.timeout + grace;
    {
      const bool server = env.rank == 0 && !env.use_agent_store;
      const RendezvousWatchdog watchdog(limit, [&env, &opts, server] {
        const int error = server ? ETIMEDOUT : connect_error(env.master_addr, env.master_port);
        const std::string why = error == 0              ? "a program other than rank 0 may hold that port"
                                : error == ECONNREFUSED ? kNobodyListens
                                                        : std::strerror(error);
        return store_failure(env, opts) + ": no answer in time (" + why + ")";
      });
      impl->store = connect_store(env, opts);
    }
    const RendezvousWatchdog watchdog(limit, [&env, &opts, cuda] {
      return rank_of(env.rank, env.world_size) + ": the " + std::string(cuda ? "NCCL" : "Gloo") +
             " process group was not built within dist_timeout_s (" + std::to_string(opts.timeout.count() / 1000) +
             " s): can every rank reach every other?";
    });
    try {
      if (cuda) {
#ifdef HGPT_WITH_CUDA  // backend_nccl_cuda.cpp is compiled exactly in the builds that define it
        impl->backend = detail::make_nccl_backend(impl->store, env.rank, env.world_size, env.local_rank, opts);
        impl->name = "nccl";
#else
        throw DistError("this build has no CUDA support, so no NCCL process group; train on CPU");
#endif
      } else {
        impl->backend = detail::make_gloo_backend(impl->store, env.rank, env.world_size, env.master_addr, opts);
        impl->name = "gloo";
      }
    } catch (const DistError&) {
      throw;
    } catch (const c10::Error& e) {
      impl->fail(std::string("creating the ") + (cuda ? "NCCL" : "Gloo") + " process group",
                 e.what_without_backtrace());
    } catch (const std::exception& e) {
      impl->fail(std::string("creating the ") + (cuda ? "NCCL" : "Gloo") + " process group", e.what());
    }
  }
  return std::shared_ptr<ProcessGroup>(new ProcessGroup(std::move(impl)));
}

int ProcessGroup::rank() const { return impl_->rank; }
int ProcessGroup::world_size() const { return impl_->world_size; }
bool ProcessGroup::is_distributed() const { return impl_->active(); }
const char* ProcessGroup::backend_name() const { return impl_->name.c_str(); }

void ProcessGroup::all_reduce_sum_(at::Tensor& t) {
  if (!impl_->active()) return;
  impl_->check_device(t, "all_reduce_sum_");
  // c10d needs dense storage; a strided view is reduced through a contiguous copy.
  std::vector<at::Tensor> bufs{t.is_contiguous() ? t : t.contiguous()};
  c10d::AllreduceOptions o;
  o.reduceOp = c10d::ReduceOp::SUM;
  o.timeout = impl_->opts.timeout;
  impl_->run("all_reduce", [&] { return impl_->backend->allreduce(bufs, o); });
  if (!bufs[0].is_same(t)) t.copy_(bufs[0]);
}

void ProcessGroup::all_reduce_mean_(std::vector<at::Tensor>& tensors) {
  if (!impl_->active()) return;
  // One bucket holds tensors of one dtype; a tensor larger than a bucket travels alone.
  struct Bucket {
    std::vector<size_t> members;
    int64_t bytes = 0;
  };
  std::map<at::ScalarType, std::vector<Bucket>> by_dtype;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& t = tensors[i];
    impl_->check_device(t, "all_reduce_mean_");
    TORCH_CHECK(at::isFloatingType(t.scalar_type()), "all_reduce_mean_: tensor ", i, " has non-floating dtype ",
                t.scalar_type());
    auto& buckets = by_dtype[t.scalar_type()];
    const int64_t bytes = t.numel() * static_cast<int64_t>(t.element_size());
    if (buckets.empty() || buckets.back().bytes + bytes > impl_->opts.bucket_bytes) {
      if (buckets.empty() || buckets.back().bytes > 0) buckets.emplace_back();
    }
    buckets.back().members.push_back(i);
    buckets.back().bytes += bytes;
  }
  const double inv = 1.0 / impl_->world_size;
  for (auto& entry : by_dtype) {
    for (auto& bucket : entry.second) {
      std::vector<at::Tensor> flat_parts;
      flat_parts.reserve(bucket.members.size());
      for (size_t i : bucket.members) flat_parts.push_back(tensors[i].reshape({-1}));
      at::Tensor flat = flat_parts.size() == 1 && tensors[bucket.members[0]].is_contiguous()
                            ? flat_parts[0]  // a view of the tensor itself: reduced in place
                            : at::cat(flat_parts);
      all_reduce_sum_(flat);
      flat.mul_(inv);
      int64_t offset = 0;
      for (size_t i : bucket.members) {
        auto& t = tensors[i];
        auto slice = flat.narrow(0, offset, t.numel()).view(t.sizes());
        if (!slice.is_same(t) && slice.data_ptr() != t.data_ptr()) t.copy_(slice);
        offset += t.numel();
      }
    }
  }
}

void ProcessGroup::broadcast_(at::Tensor& t, int root) {
  TORCH_CHECK(root >= 0 && root < impl_->world_size, "broadcast_: root ", root, " outside a world of ",
              impl_->world_size);
  if (!impl_->active()) return;
  impl_->check_device(t, "broadcast_");
  std::vector<at::Tensor> bufs{t.is_contiguous() ? t : t.contiguous()};
  c10d::BroadcastOptions o;
  o.rootRank = root;
  o.timeout = impl_->opts.timeout;
  impl_->run("broadcast", [&] { return impl_->backend->broadcast(bufs, o); });
  if (!bufs[0].is_same(t)) t.copy_(bufs[0]);
}

void ProcessGroup::barrier() {
  if (!impl_->active()) return;
  c10d::BarrierOptions o;
  o.timeout = impl_->opts.timeout;
  impl_->run("barrier", [&] { return impl_->backend->barrier(o); });
}

double ProcessGroup::all_reduce_sum(double v) {
  if (!impl_->active()) return v;
  auto t = at::full({1}, v, at::TensorOptions().dtype(at::kDouble).device(impl_->cuda ? at::kCUDA : at::kCPU));
  all_reduce_sum_(t);
  return t.item<double>();
}

double ProcessGroup::all_reduce_mean(double v) { return all_reduce_sum(v) / impl_->world_size; }

void ProcessGroup::check_same_config(const std::string& config_json) {
  parse_config(config_json, static_cast<size_t>(impl_->rank));  // a malformed text is our bug
  if (!impl_->active()) return;
  const std::string round = "config/" + std::to_string(impl_->config_rounds++) + "/";
  std::vector<std::string> keys;
  for (int r = 0; r < impl_->world_size; ++r) keys.push_back(round + std::to_string(r));
  std::vector<std::string> configs;
  try {
    impl_->store->set(keys[impl_->rank], to_bytes(config_json));
    impl_->store->wait(keys, impl_->opts.timeout);
    for (const auto& key : keys) {
      const auto bytes = impl_->store->get(key);
      configs.emplace_back(bytes.begin(), bytes.end());
    }
  } catch (const c10::Error& e) {
    impl_->fail("check_same_config", e.what_without_backtrace());
  }
  // Every rank sees the same texts, so every rank reaches the same verdict.
  const std::string mismatch = describe_config_mismatch(configs);
  if (!mismatch.empty()) throw UserError(mismatch);
}

}  // namespace hgpt::dist
