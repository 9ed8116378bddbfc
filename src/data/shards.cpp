// shards.cpp — llm.c-format token shards: header validation, read-only mmap access, atomic writes,
// directory listing. Every failure a user can cause (missing file, wrong format, truncation) is a
// UserError that names the file.
#include "hgpt/data/shards.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "hgpt/errors.h"
#include "hgpt/files.h"

namespace hgpt::data {
namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw UserError("token shard " + path + ": " + what);
}

// Header checks shared by read_shard_header and TokenShard; file_bytes is the on-disk size.
ShardHeader parse_header(const std::string& path, const int32_t* h, int64_t file_bytes) {
  ShardHeader out;
  if (h[0] == kShardMagicU16) {
    if (h[1] != kShardVersionU16) fail(path, "bad version " + std::to_string(h[1]) + " for uint16 magic (expected 1)");
    out.token_bytes = 2;
  } else if (h[0] == kShardMagicU32) {
    if (h[1] != kShardVersionU32) fail(path, "bad version " + std::to_string(h[1]) + " for uint32 magic (expected 7)");
    out.token_bytes = 4;
  } else {
    fail(path, "bad magic " + std::to_string(h[0]) + " (expected 20240520 or 20240801); not an llm.c .bin shard");
  }
  if (h[2] < 0) fail(path, "negative token count " + std::to_string(h[2]) + " in header");
  out.num_tokens = h[2];
  const int64_t expected = kShardHeaderBytes + out.num_tokens * out.token_bytes;
  if (file_bytes != expected)
    fail(path, "size mismatch: header says " + std::to_string(out.num_tokens) + " tokens (" + std::to_string(expected) +
                   " bytes) but the file has " + std::to_string(file_bytes) + " bytes (truncated or corrupt)");
  return out;
}

// Opens the file read-only and returns (fd, size); the caller closes fd.
int open_checked(const std::string& path, int64_t* size) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, std::string("cannot open: ") + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path, "not a regular file");
  }
  *size = static_cast<int64_t>(st.st_size);
  if (*size < kShardHeaderBytes) {
    ::close(fd);
    fail(path, "file has " + std::to_string(*size) + " bytes, shorter than the 1024-byte header");
  }
  return fd;
}

}  // namespace

ShardHeader read_shard_header(const std::string& path) {
  int64_t size = 0;
  int fd = open_checked(path, &size);
  int32_t header[kShardHeaderInts];
  ssize_t got = ::pread(fd, header, sizeof(header), 0);
  ::close(fd);
  if (got != static_cast<ssize_t>(sizeof(header))) fail(path, "cannot read the header");
  return parse_header(path, header, size);
}

TokenShard::TokenShard(const std::string& path) : path_(path) {
  int64_t size = 0;
  int fd = open_checked(path, &size);
  void* map = ::mmap(nullptr, static_cast<size_t>(size), PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);  // the mapping keeps the file alive
  if (map == MAP_FAILED) fail(path, std::string("mmap failed: ") + std::strerror(errno));
  map_ = map;
  map_bytes_ = static_cast<size_t>(size);
  try {
    header_ = parse_header(path, static_cast<const int32_t*>(map_), size);
  } catch (...) {
    release();
    throw;
  }
  tokens_ = static_cast<const unsigned char*>(map_) + kShardHeaderBytes;
}

TokenShard::~TokenShard() { release(); }

TokenShard::TokenShard(TokenShard&& o) noexcept
    : path_(std::move(o.path_)),
      header_(o.header_),
      map_(o.map_),
      map_bytes_(o.map_bytes_),
      tokens_(o.tokens_),
      max_token_(o.max_token_.load()) {
  o.map_ = nullptr;
  o.map_bytes_ = 0;
  o.tokens_ = nullptr;
  o.header_ = ShardHeader{};
}

TokenShard& TokenShard::operator=(TokenShard&& o) noexcept {
  if (this != &o) {
    release();
    path_ = std::move(o.path_);
    header_ = o.header_;
    map_ = o.map_;
    map_bytes_ = o.map_bytes_;
    tokens_ = o.tokens_;
    max_token_ = o.max_token_.load();
    o.map_ = nullptr;
    o.map_bytes_ = 0;
    o.tokens_ = nullptr;
    o.header_ = ShardHeader{};
  }
  return *this;
}

void TokenShard::release() {
  if (map_ != nullptr) ::munmap(map_, map_bytes_);
  map_ = nullptr;
  map_bytes_ = 0;
  tokens_ = nullptr;
}

uint32_t TokenShard::operator[](int64_t i) const {
  if (header_.token_bytes == 2) {
    uint16_t v;
    std::memcpy(&v, tokens_ + i * 2, 2);
    return v;
  }
  uint32_t v;
  std::memcpy(&v, tokens_ + i * 4, 4);
  return v;
}

void TokenShard::read(int64_t start, int64_t count, int64_t* out) const {
  if (start < 0 || count < 0 || start + count > header_.num_tokens)
    throw std::out_of_range("TokenShard::read [" + std::to_string(start) + ", " + std::to_string(start + count) +
                            ") out of range for " + path_ + " with " + std::to_string(header_.num_tokens) + " tokens");
  if (header_.token_bytes == 2) {
    const unsigned char* p = tokens_ + start * 2;
    for (int64_t i = 0; i < count; ++i) {
      uint16_t v;
      std::memcpy(&v, p + i * 2, 2);
      out[i] = v;
    }
  } else {
    const unsigned char* p = tokens_ + start * 4;
    for (int64_t i = 0; i < count; ++i) {
      uint32_t v;
      std::memcpy(&v, p + i * 4, 4);
      out[i] = v;
    }
  }
}

uint32_t TokenShard::max_token() const {
  int64_t cached = max_token_.load(std::memory_order_relaxed);
  if (cached >= 0) return static_cast<uint32_t>(cached);
  uint32_t m = 0;
  for (int64_t i = 0; i < header_.num_tokens; ++i) m = std::max(m, (*this)[i]);
  max_token_.store(m, std::memory_order_relaxed);
  return m;
}

ShardBuilder::ShardBuilder(bool wide, int64_t capacity) : wide_(wide), capacity_(capacity) {
  // Reserved, not touched: only the bytes written are resident. Capped, so that an odd shard size
  // asks for no more address space than a default shard's (beyond it the string grows as usual).
  const int64_t reserved = std::clamp<int64_t>(capacity_, 0, 100'000'000);
  bytes_.reserve(static_cast<size_t>(kShardHeaderBytes + (wide_ ? 4 : 2) * reserved));
  bytes_.assign(kShardHeaderBytes, '\0');
}

void ShardBuilder::append(const uint32_t* tokens, size_t count) {
  const size_t width = wide_ ? 4 : 2;
  const size_t at = bytes_.size();
  bytes_.resize(at + width * count);
  char* out = bytes_.data() + at;
  if (wide_) {
    if (count > 0) std::memcpy(out, tokens, 4 * count);
  } else {
    for (size_t i = 0; i < count; ++i) {
      if (tokens[i] >= 65536u) throw UserError("token " + std::to_string(tokens[i]) + " does not fit a uint16 shard");
      const auto narrow = static_cast<uint16_t>(tokens[i]);
      std::memcpy(out + 2 * i, &narrow, 2);
    }
  }
  size_ += static_cast<int64_t>(count);
}

void ShardBuilder::write(const std::string& path) {
  if (size_ > INT32_MAX)
    throw UserError("token shard " + path + ": " + std::to_string(size_) +
                    " tokens do not fit the int32 header count; use a smaller shard size");
  int32_t header[kShardHeaderInts] = {};  // little-endian, as the machines we run on
  header[0] = wide_ ? kShardMagicU32 : kShardMagicU16;
  header[1] = wide_ ? kShardVersionU32 : kShardVersionU16;
  header[2] = static_cast<int32_t>(size_);
  std::memcpy(bytes_.data(), header, sizeof(header));
  write_file_atomic(path, bytes_);
  bytes_.resize(kShardHeaderBytes);
  size_ = 0;
}

void write_shard(const std::string& path, const std::vector<uint32_t>& tokens, bool force_uint32) {
  const bool wide = force_uint32 || std::any_of(tokens.begin(), tokens.end(), [](uint32_t t) { return t >= 65536u; });
  ShardBuilder shard(wide, static_cast<int64_t>(tokens.size()));
  shard.append(tokens.data(), tokens.size());
  shard.write(path);
}

std::vector<std::string> list_shards(const std::string& dir, bool validation) {
  if (!is_directory(dir)) {
    throw UserError("shard directory " + dir + " is not a directory; it must exist and hold *.bin token shards");
  }
  std::vector<std::string> out;  // list_dir's names are sorted, so the paths are too
  for (const std::string& name : list_dir(dir)) {
    if (name.size() < 5 || name.compare(name.size() - 4, 4, ".bin") != 0) continue;
    const std::string full = path_join(dir, name);
    // A *.bin entry that is not a readable file (a dangling or looping symlink, a folder) is an
    // error, not skipped: skipping would silently train on less data than the user gave.
    struct stat st {};
    const bool found = ::stat(full.c_str(), &st) == 0;
    if (!found || !S_ISREG(st.st_mode))
      fail(full, "cannot be read as a shard (" + std::string(found ? "not a regular file" : std::strerror(errno)) +
                     "); remove it or fix the link");
    const bool is_val = name.find("_val_") != std::string::npos;
    if (is_val == validation) out.push_back(full);
  }
  if (out.empty())
    throw UserError("shard directory " + dir + " has no " +
                    (validation ? "validation (*_val_*.bin)" : "training (*.bin without _val_)") + " shards");
  return out;
}

}  // namespace hgpt::data
