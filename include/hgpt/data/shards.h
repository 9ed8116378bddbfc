// shards.h — llm.c-format token shard files: validate, memory-map, write atomically, list a directory.
//
// Format (llm.c): a header of 256 int32 ([0] magic, [1] version, [2] number of tokens), then the
// tokens. Magic 20240520 / version 1 → uint16 tokens; magic 20240801 / version 7 → uint32 tokens.
// Files whose name contains "_val_" are validation shards, the others training shards.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

namespace hgpt::data {

constexpr int32_t kShardMagicU16 = 20240520;
constexpr int32_t kShardVersionU16 = 1;
constexpr int32_t kShardMagicU32 = 20240801;
constexpr int32_t kShardVersionU32 = 7;
constexpr int64_t kShardHeaderInts = 256;
constexpr int64_t kShardHeaderBytes = kShardHeaderInts * 4;

struct ShardHeader {
  int64_t num_tokens = 0;
  int token_bytes = 2;  // 2 (uint16 tokens) or 4 (uint32 tokens)
};

// Validates magic/version and that the file size matches the header; throws hgpt::UserError whose
// message names the file and what is wrong (bad magic/version, size mismatch, unreadable/missing).
ShardHeader read_shard_header(const std::string& path);

// A validated shard, memory-mapped read-only. Tokens are exposed as uint32 values.
class TokenShard {
 public:
  explicit TokenShard(const std::string& path);
  ~TokenShard();
  TokenShard(TokenShard&& other) noexcept;
  TokenShard& operator=(TokenShard&& other) noexcept;
  TokenShard(const TokenShard&) = delete;
  TokenShard& operator=(const TokenShard&) = delete;

  const std::string& path() const { return path_; }
  int64_t size() const { return header_.num_tokens; }
  int token_bytes() const { return header_.token_bytes; }
  uint32_t operator[](int64_t i) const;
  // Copies tokens [start, start + count) widened to int64; throws std::out_of_range past the end.
  void read(int64_t start, int64_t count, int64_t* out) const;
  // Largest token id in the shard (0 for an empty shard); scans once, then cached.
  uint32_t max_token() const;

 private:
  void release();

  std::string path_;
  ShardHeader header_;
  void* map_ = nullptr;  // whole file mapping (nullptr for an empty mapping)
  size_t map_bytes_ = 0;
  const unsigned char* tokens_ = nullptr;       // start of the token payload inside the mapping
  mutable std::atomic<int64_t> max_token_{-1};  // -1: not computed yet (atomic: readers may share a shard)
};

// Writes atomically (temporary name + rename). Tokens are stored as uint16 when every token is
// below 65536, unless force_uint32. Throws UserError when the file cannot be written.
void write_shard(const std::string& path, const std::vector<uint32_t>& tokens, bool force_uint32 = false);

// A shard built in its file's bytes as tokens arrive, for writers that must not hold the tokens
// twice (tokenize: a 100M-token shard is 200 MB here, not 400 MB of uint32 plus its copy).
class ShardBuilder {
 public:
  // wide: uint32 tokens; otherwise uint16, and a token ≥ 65536 is refused. `capacity`: the tokens
  // the shard will hold at most (reserved once, so the bytes are never copied while it grows).
  ShardBuilder(bool wide, int64_t capacity = 0);
  void append(const uint32_t* tokens, size_t count);
  int64_t size() const { return size_; }
  // Writes the shard atomically (as write_shard) and empties the builder for the next one.
  void write(const std::string& path);

 private:
  bool wide_;
  int64_t capacity_, size_ = 0;
  std::string bytes_;  // the header, then size_ tokens
};

// Sorted paths of the *.bin files of a directory: validation = names containing "_val_",
// training = the others. Throws UserError if the directory is missing or has no such shard.
std::vector<std::string> list_shards(const std::string& dir, bool validation);

}  // namespace hgpt::data
