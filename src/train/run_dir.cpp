// run_dir.cpp — a run's folder: its writer's lock; for a fresh run, refuse another run's
// checkpoints or delete them on request.
#include "hgpt/train/run_dir.h"

#include "hgpt/errors.h"
#include "hgpt/files.h"
#include "hgpt/strings.h"
#include "hgpt/train/checkpoint.h"
#include "hgpt/train/checkpoint_files.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <vector>

namespace hgpt::train {
namespace {

// Deletes the files of `dir` that `is_meta` or `is_data` accepts: the meta files first, so no
// checkpoint is ever left looking complete while its other files go.
template <class IsMeta, class IsData>
void delete_checkpoint_files(const std::string& dir, IsMeta is_meta, IsData is_data) {
  std::vector<std::string> meta, data;
  for (const std::string& name : list_dir(dir)) {
    if (is_meta(name))
      meta.push_back(name);
    else if (is_data(name))
      data.push_back(name);
  }
  meta.insert(meta.end(), data.begin(), data.end());
  for (const std::string& name : meta) {
    const std::string path = path_join(dir, name);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT)
      throw UserError("cannot delete " + path + ": " + std::strerror(errno));
  }
}

constexpr char kLockFile[] = "run.lock";

// "PID <pid> on host <host>", what the lock file holds while its process runs.
std::string lock_holder_text() {
  char host[HOST_NAME_MAX + 1] = {};
  if (::gethostname(host, sizeof(host) - 1) != 0) std::strcpy(host, "?");
  return "PID " + std::to_string(::getpid()) + " on host " + host;
}

std::string read_lock_holder(int fd) {
  char buffer[512] = {};
  const ssize_t n = ::pread(fd, buffer, sizeof(buffer) - 1, 0);
  std::string text = n > 0 ? std::string(buffer, n) : std::string();
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text.empty() ? "a process that has not written its PID yet" : text;
}

}  // namespace

RunLock::RunLock(const std::string& dir) {
  make_dirs(dir);
  const std::string path = path_join(dir, kLockFile);
  // The holder text is written into the lock file itself, never into a file a link there names.
  fd_ = open_own_file(path, O_RDWR | O_CREAT, "the run folder's lock file");
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    const std::string holder = err == EWOULDBLOCK ? read_lock_holder(fd_) : std::string();
    ::close(fd_);
    fd_ = -1;
    if (err != EWOULDBLOCK) throw UserError("cannot lock " + path + ": " + std::strerror(err));
    throw UserError("the run folder '" + dir + "' is in use by another run (" + holder +
                    "): wait for it to end or stop it, or choose another model_tag or out_dir");
  }
  const std::string holder = lock_holder_text() + "\n";
  // Best effort: the flock, not the text, is the lock; the text only names the holder.
  if (::ftruncate(fd_, 0) == 0) (void)!::pwrite(fd_, holder.data(), holder.size(), 0);
}

RunLock::~RunLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the last descriptor releases the flock
}

void prepare_fresh_run_dir(const std::string& dir, bool overwrite) {
  make_dirs(dir);
  const std::optional<int64_t> newest = latest_checkpoint(dir);
  if (!newest) return;
  if (!overwrite) {
    throw UserError("'" + dir + "' already holds the checkpoints of a run (newest: step " + std::to_string(*newest) +
                    "); continue it with --resume=true, choose another model_tag or out_dir, or pass " +
                    "--overwrite=true to delete them and start afresh");
  }
  // Every checkpoint file, temporary names included.
  delete_checkpoint_files(
      dir, [](const std::string& name) { return is_meta_file(name); },
      [](const std::string& name) { return is_checkpoint_data_file(name); });
}

void withdraw_checkpoint(const std::string& dir, int64_t step) {
  const std::string meta = meta_file_name(step), model = model_file_name(step), optim = optim_file_prefix(step);
  delete_checkpoint_files(
      dir, [&](const std::string& name) { return name == meta; },
      [&](const std::string& name) { return name == model || starts_with(name, optim); });
}

}  // namespace hgpt::train
