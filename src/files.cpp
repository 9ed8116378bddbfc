// files.cpp — POSIX implementations of files.h.
#include "hgpt/files.h"

#include "hgpt/errors.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace hgpt {

void make_dirs(const std::string& dir) {
  for (size_t pos = 1; pos <= dir.size(); ++pos) {
    if (pos != dir.size() && dir[pos] != '/') continue;
    const std::string part = dir.substr(0, pos);
    if (::mkdir(part.c_str(), 0755) != 0 && errno != EEXIST)
      throw UserError("cannot create directory " + part + ": " + std::strerror(errno));
  }
  if (!is_directory(dir)) throw UserError(dir + " exists but is not a directory");
}

bool is_directory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string read_file(const std::string& path, const char* what) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw UserError(std::string(what) + " " + path + " cannot be read: " + std::strerror(errno));
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

bool path_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

std::vector<std::string> list_dir(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) throw UserError("cannot open directory " + dir + ": " + std::strerror(errno));
  std::vector<std::string> names;
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

std::string path_join(const std::string& dir, const std::string& name) {
  if (dir.empty()) return name;
  return dir.back() == '/' ? dir + name : dir + "/" + name;
}

std::string checked_output_folder(const std::string& flag, const std::string& path, const std::string& why_a_folder) {
  std::string out = path;
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  const std::string named = flag + " " + out;
  const std::string fix = "; choose another " + flag;
  struct stat entry {
  }, target{};
  if (out.empty()) throw UserError(flag + " is empty; name a folder");
  if (::lstat(out.c_str(), &entry) == 0) {
    const bool resolves = ::stat(out.c_str(), &target) == 0;
    if (S_ISLNK(entry.st_mode) && !resolves)
      throw UserError(named + " is a symbolic link to something that does not exist; remove the link, make the " +
                      "folder it points to, or choose another " + flag);
    if (!S_ISDIR(target.st_mode)) throw UserError(named + " is a file, not a folder (" + why_a_folder + ")" + fix);
    if (::access(out.c_str(), W_OK | X_OK) != 0) throw UserError(named + " is a folder this user cannot write" + fix);
    if (!S_ISLNK(entry.st_mode)) return out;
    char* real = ::realpath(out.c_str(), nullptr);
    if (real == nullptr) throw UserError(named + ": cannot follow its link: " + std::strerror(errno) + fix);
    const std::string resolved = real;
    std::free(real);
    return resolved;
  }
  // It is to be created: the nearest part of the path that exists must be a folder we can write.
  std::string parent = out;
  while (true) {
    const size_t slash = parent.rfind('/');
    parent = slash == std::string::npos ? "." : slash == 0 ? "/" : parent.substr(0, slash);
    if (::lstat(parent.c_str(), &entry) == 0) break;
    if (parent == "." || parent == "/") break;
  }
  const std::string cannot = named + " cannot be created: " + parent;
  if (::stat(parent.c_str(), &target) != 0)
    throw UserError(cannot + " is a symbolic link to something that does not exist" + fix);
  if (!S_ISDIR(target.st_mode)) throw UserError(cannot + " is a file, not a folder" + fix);
  if (::access(parent.c_str(), W_OK | X_OK) != 0) throw UserError(cannot + " is a folder this user cannot write" + fix);
  return out;
}

int open_own_file(const std::string& path, int flags, const std::string& what) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC | O_NOFOLLOW, 0644);
  const std::string named = what + " " + path;
  if (fd < 0) {
    const int err = errno;
    const std::string fix = err == EISDIR ? "remove that directory (the program keeps its own file at that name)"
                            : err == ELOOP
                                ? "it is a symbolic link: remove the link (the program keeps its own file there)"
                                : "make its folder writable, or choose another one";
    throw UserError("cannot open " + named + ": " + std::strerror(err) + "; " + fix);
  }
  struct stat st {};
  // A character device (/dev/null, /dev/full) holds no file's bytes: writing it changes no file.
  if (::fstat(fd, &st) == 0 && (S_ISCHR(st.st_mode) || (S_ISREG(st.st_mode) && st.st_nlink == 1))) return fd;
  ::close(fd);
  throw UserError(named + (S_ISREG(st.st_mode) ? " is a hard link (the same file has other names): remove it, so "
                                                 "that writing it changes no other file"
                                               : " is neither a file nor a character device: remove it"));
}

namespace {

// Writes all of `bytes` to fd; false on any error (errno says which).
bool write_all(int fd, const std::string& bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

// fsync of a directory makes the entries created or renamed in it durable. File systems that
// cannot sync a directory say EINVAL; there is nothing more to do on those.
bool sync_directory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = ::fsync(fd) == 0 || errno == EINVAL;
  ::close(fd);
  return ok;
}

// Crash-consistency tests set HGPT_CRASH_TEST_KILL_WRITING to part of a file name: the process
// then kills itself (SIGKILL, no clean-up) halfway through writing the first file so named.
void maybe_die_while_writing(const std::string& path, int fd, const std::string& bytes) {
  static const char* target = std::getenv("HGPT_CRASH_TEST_KILL_WRITING");
  if (target == nullptr || *target == '\0' || path.find(target) == std::string::npos) return;
  (void)::write(fd, bytes.data(), bytes.size() / 2);
  ::raise(SIGKILL);
}

}  // namespace

// The order is what makes a crash or power loss harmless: the data reaches the disk (fsync of the
// temporary file) before the rename can publish it, and the rename itself is made durable (fsync of
// the folder) before we return; at any moment `path` holds either the old or the new bytes.
void write_file_atomic(const std::string& path, const std::string& bytes) {
  const std::string tmp = path + ".tmp";
  // A fresh file: whatever a crash (or a user) left at the temporary name, a link included, goes.
  ::unlink(tmp.c_str());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) throw UserError("cannot write " + tmp + ": " + std::strerror(errno));
  maybe_die_while_writing(path, fd, bytes);
  bool ok = write_all(fd, bytes) && ::fsync(fd) == 0;
  int error = ok ? 0 : errno;
  if (::close(fd) != 0 && ok) ok = false, error = errno;
  if (ok && ::rename(tmp.c_str(), path.c_str()) != 0) ok = false, error = errno;
  if (!ok) {
    std::remove(tmp.c_str());
    throw UserError("cannot write " + path + ": " + std::strerror(error) +
                    " (is the disk full or the folder read-only?)");
  }
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  if (!sync_directory(dir)) throw UserError("cannot sync the folder of " + path + ": " + std::strerror(errno));
}

}  // namespace hgpt
