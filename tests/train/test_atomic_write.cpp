// test_atomic_write.cpp — write_file_atomic, which every checkpoint, meta and tokenizer file goes
// through, makes its data durable before publishing it: the temporary file is fsynced before the
// rename, and the folder after it (else a power loss can leave a renamed but empty file).
//
// The test watches the system calls by defining fsync and rename in this executable: the library's
// calls bind to these definitions at link time, which record the call and then do the real thing.
#include "hgpt/errors.h"
#include "hgpt/files.h"
#include "tests/train/train_test_util.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <mutex>
#include <string>
#include <vector>

namespace {

std::mutex g_calls_mutex;
std::vector<std::string> g_calls;  // "fsync <path>" / "rename <from> <to>", in call order

std::string fd_path(int fd) {
  char link[64], target[PATH_MAX];
  std::snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
  const ssize_t n = ::readlink(link, target, sizeof(target) - 1);
  return n > 0 ? std::string(target, static_cast<size_t>(n)) : "?";
}

void record(const std::string& call) {
  std::lock_guard<std::mutex> lock(g_calls_mutex);
  g_calls.push_back(call);
}

}  // namespace

extern "C" int fsync(int fd) {
  record("fsync " + fd_path(fd));
  return static_cast<int>(::syscall(SYS_fsync, fd));
}

extern "C" int rename(const char* from, const char* to) noexcept {
  record(std::string("rename ") + from + " " + to);
  return ::renameat(AT_FDCWD, from, AT_FDCWD, to);
}

namespace hgpt::testing {
namespace {

// The index of the first call equal to `call`, or -1.
int position_of(const std::vector<std::string>& calls, const std::string& call) {
  for (size_t i = 0; i < calls.size(); ++i)
    if (calls[i] == call) return static_cast<int>(i);
  return -1;
}

std::string real_path(const std::string& path) {
  char buf[PATH_MAX];
  return ::realpath(path.c_str(), buf) ? std::string(buf) : path;
}

TEST(AtomicWrite, FsyncsTheFileBeforeTheRenameAndTheFolderAfter) {
  TempDir dir;
  const std::string folder = real_path(dir.path());
  const std::string path = folder + "/meta_000001.json";
  {
    std::lock_guard<std::mutex> lock(g_calls_mutex);
    g_calls.clear();
  }
  write_file_atomic(path, "{\"step\": 1}");
  std::vector<std::string> calls;
  {
    std::lock_guard<std::mutex> lock(g_calls_mutex);
    calls = g_calls;
  }
  std::string all;
  for (const auto& c : calls) all += "  " + c + "\n";
  const int sync_file = position_of(calls, "fsync " + path + ".tmp");
  const int renamed = position_of(calls, "rename " + path + ".tmp " + path);
  const int sync_folder = position_of(calls, "fsync " + folder);
  ASSERT_GE(renamed, 0) << "no rename of the temporary file:\n" << all;
  EXPECT_GE(sync_file, 0) << "the temporary file is never fsynced:\n" << all;
  EXPECT_LT(sync_file, renamed) << "fsync of the data must come before the rename:\n" << all;
  EXPECT_GT(sync_folder, renamed) << "the folder must be fsynced after the rename:\n" << all;
  EXPECT_EQ(read_text(path), "{\"step\": 1}");
}

TEST(AtomicWrite, AFailedWriteLeavesTheOldFileAndNoTemporary) {
  TempDir dir;
  const std::string path = dir.file("model.pt");
  write_file_atomic(path, "old");
  ASSERT_EQ(::mkdir((path + ".tmp").c_str(), 0755), 0);  // the temporary name cannot be opened
  EXPECT_THROW(write_file_atomic(path, "new"), UserError);
  EXPECT_EQ(read_text(path), "old");
  ::rmdir((path + ".tmp").c_str());
}

}  // namespace
}  // namespace hgpt::testing
