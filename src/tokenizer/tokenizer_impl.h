// tokenizer_impl.h — state shared by the tokenizer's .cpp files (not a public header): the
// compiled split regex, a flat hash map keyed by token pairs, and the tokenizer's tables.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "hgpt/tokenizer/tokenizer.h"

namespace hgpt::tokenizer::detail {

// The pre-tokenizer: a PCRE2 pattern compiled with UTF + UCP + MATCH_INVALID_UTF (JIT when the
// library has it). Thread-safe: per-thread match data lives in thread_local storage.
class SplitRegex {
 public:
  // Throws hgpt::UserError (with PCRE2's message and offset) if the pattern does not compile.
  explicit SplitRegex(const std::string& pattern);
  ~SplitRegex();
  SplitRegex(const SplitRegex&) = delete;
  SplitRegex& operator=(const SplitRegex&) = delete;
  // Appends the pieces of `text` to `pieces`: every regex match, and every run of bytes between
  // matches (only invalid UTF-8 or text the pattern cannot match) as its own piece. The pieces
  // concatenate back to `text` exactly.
  void split(std::string_view text, std::vector<std::string_view>& pieces) const;

 private:
  void* code_ = nullptr;  // pcre2_code_8*
  bool jit_ = false;
};

inline uint64_t pair_key(uint32_t a, uint32_t b) { return (static_cast<uint64_t>(a) << 32) | b; }

// Open-addressing hash map uint64 → V with linear probing; the key ~0 is reserved (never a pair
// of valid ids). Much faster than std::unordered_map for the pair lookups BPE does all the time.
template <typename V>
class PairMap {
 public:
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  explicit PairMap(size_t expected = 16) { rehash(capacity_for(expected)); }

  const V* find(uint64_t key) const {
    size_t i = slot(key);
    while (true) {
      const Slot& s = slots_[i];
      if (s.key == key) return &s.value;
      if (s.key == kEmpty) return nullptr;
      i = (i + 1) & mask_;
    }
  }
  // Reference to the value for key, default-constructed on first use.
  V& operator[](uint64_t key) {
    if ((size_ + 1) * 2 > slots_.size()) rehash(slots_.size() * 2);
    size_t i = slot(key);
    while (slots_[i].key != key) {
      if (slots_[i].key == kEmpty) {
        slots_[i].key = key;
        slots_[i].value = V{};
        ++size_;
        return slots_[i].value;
      }
      i = (i + 1) & mask_;
    }
    return slots_[i].value;
  }
  size_t size() const { return size_; }
  template <typename F>
  void for_each(F&& f) const {  // f(key, value) for every entry, in slot order
    for (const Slot& s : slots_)
      if (s.key != kEmpty) f(s.key, s.value);
  }

 private:
  struct Slot {  // key and value side by side: one cache line per probe
    uint64_t key = kEmpty;
    V value{};
  };
  static size_t capacity_for(size_t n) {
    size_t c = 16;
    while (c < n * 2) c *= 2;
    return c;
  }
  size_t slot(uint64_t key) const {
    const uint64_t h = key * 0x9E3779B97F4A7C15ull;  // Fibonacci hashing: spreads both halves of the pair
    return static_cast<size_t>(h >> 32) & mask_;
  }
  void rehash(size_t capacity) {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(capacity, Slot{});
    mask_ = capacity - 1;
    size_ = 0;
    for (Slot& s : old)
      if (s.key != kEmpty) (*this)[s.key] = std::move(s.value);
  }

  std::vector<Slot> slots_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

struct TokenizerImpl {
  std::string pattern;
  std::unique_ptr<SplitRegex> regex;
  std::vector<std::string> id_bytes;  // mergeable tokens' bytes by id ("" for unused / special ids)
  std::vector<uint8_t> is_rank;       // 1 where id is a mergeable rank
  std::map<std::string, uint32_t> specials;
  std::vector<std::string> special_name;                       // by id: the special token's name, "" for other ids
  int64_t num_ranks = 0;                                       // largest rank + 1
  int64_t vocab_size = 0;                                      // largest id + 1
  uint32_t byte_id[256] = {};                                  // id of each single byte
  std::unordered_map<std::string_view, uint32_t> bytes_to_id;  // views into id_bytes
  PairMap<uint32_t> merges;                                    // pair_key(left, right) → id of their concatenation

  // Builds byte_id, bytes_to_id and merges from id_bytes / is_rank and checks the specials.
  // `source` names the file (or "trained tokenizer") for error messages.
  void build_indexes(const std::string& source);
  // Appends the BPE tokens of one piece.
  void encode_piece(std::string_view piece, std::vector<uint32_t>& out) const;
  void encode_into(std::string_view text, std::vector<uint32_t>& out) const;
};

// Creates the impl for mergeable tokens (by id) + specials + pattern; validates everything.
std::shared_ptr<TokenizerImpl> make_impl(std::vector<std::string> id_bytes, std::vector<uint8_t> is_rank,
                                         std::map<std::string, uint32_t> specials, const std::string& pattern,
                                         const std::string& source);

}  // namespace hgpt::tokenizer::detail
