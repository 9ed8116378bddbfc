// tokenizer.h — byte-level BPE tokenizer with regex pre-splitting (GPT-4 / nanochat style), stored
// in tiktoken's ranks format; training, encoding, decoding.
//
// Files in a tokenizer directory (docs/TOKENIZER.md has the details):
//   tokenizer.tiktoken  one line per mergeable token: base64(bytes) ' ' rank   (rank == token id)
//   tokenizer.json      {"pattern": "...", "special_tokens": {"<|bos|>": id, ...}, "vocab_size": N}
// Special tokens get the ids after the mergeable ranks. A Tokenizer is immutable after construction,
// cheap to copy (shared state) and safe to use from many threads at once.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace hgpt::tokenizer {

// nanochat's GPT-4-style split pattern, with numbers split into groups of 1–2 digits.
extern const char* const kDefaultSplitPattern;
// "<|bos|>" then nanochat's chat tokens, in the order their ids are assigned.
std::vector<std::string> default_special_tokens();

constexpr const char* kTiktokenFile = "tokenizer.tiktoken";
constexpr const char* kTokenizerJsonFile = "tokenizer.json";

namespace detail {
struct TokenizerImpl;
}

// What Tokenizer::train reports while it runs (for progress bars / ETA).
struct TrainProgress {
  std::string phase;  // "count" (reading + splitting documents) or "merge"
  int64_t done = 0;   // count: bytes read so far; merge: merges done
  int64_t total = 0;  // count: 0 (unknown); merge: merges wanted
};

struct TrainOptions {
  int64_t vocab_size = 65536;  // including the special tokens
  std::string pattern = kDefaultSplitPattern;
  std::vector<std::string> special_tokens = default_special_tokens();
  int threads = 0;                                     // 0: all hardware threads
  std::function<void(const TrainProgress&)> progress;  // optional; called from the calling thread
};

// Yields documents one at a time: fills `doc` and returns true, or returns false when done.
using DocumentSource = std::function<bool(std::string& doc)>;

// What identifies a tokenizer folder's contents: fnv1a64_hex of its tokenizer.tiktoken and
// tokenizer.json bytes. Runs record it (run.json), so that a tokenizer replaced in place, or a copy
// of the original elsewhere, is told apart from the path alone. UserError when the files cannot be read.
std::string tokenizer_fingerprint(const std::string& dir);

class Tokenizer {
 public:
  // Reads DIR/tokenizer.tiktoken and DIR/tokenizer.json. Malformed files → hgpt::UserError naming
  // the file and line.
  static Tokenizer load(const std::string& dir);
  // Any tiktoken-format ranks file plus a split pattern and special tokens (name → id; ids must not
  // collide with ranks). All 256 single bytes must have a rank (byte-level fallback).
  static Tokenizer from_tiktoken(const std::string& ranks_path, const std::string& pattern,
                                 const std::map<std::string, uint32_t>& special_tokens);
  // Writes both files (atomically: temporary names + rename); creates DIR if needed.
  void save(const std::string& dir) const;

  // Trains byte-level BPE: ranks 0..255 are the bytes, then one rank per merge, then the special
  // tokens. Each step merges the most frequent adjacent pair; ties go to the lexicographically
  // smallest (left id, right id) pair. Deterministic for the same documents and options (any
  // thread count). Stops early (smaller vocab) when no pair is left to merge.
  static Tokenizer train(const std::vector<std::string>& documents, const TrainOptions& options = {});
  static Tokenizer train(const DocumentSource& next_document, const TrainOptions& options = {});

  // Ordinary text (special-token names in the text are encoded as plain text). Any byte string,
  // including invalid UTF-8, round-trips through decode.
  std::vector<uint32_t> encode(std::string_view text) const;
  // Encodes many documents on `threads` threads (0: all hardware threads); results in input order.
  std::vector<std::vector<uint32_t>> encode_batch(const std::vector<std::string>& texts, int threads = 0) const;
  // Concatenates the tokens' bytes (special tokens give their names). Unknown ids → std::out_of_range.
  std::string decode(const std::vector<uint32_t>& ids) const;
  // The pre-tokenizer's pieces (regex matches, plus any bytes the regex cannot match, e.g. invalid UTF-8).
  std::vector<std::string> split(std::string_view text) const;

  // Id of "<|bos|>", else of "<|endoftext|>" (tiktoken's GPT tokenizers); UserError if neither exists.
  uint32_t bos_id() const;
  // Id of a special token; UserError naming the token if absent.
  uint32_t special_id(const std::string& name) const;
  const std::map<std::string, uint32_t>& special_tokens() const;
  // One more than the largest id (mergeable ranks and special tokens).
  int64_t vocab_size() const;
  // Number of mergeable (non-special) tokens' rank slots: largest rank + 1.
  int64_t num_ranks() const;
  // Bytes of a mergeable token (empty for special tokens and unused ids).
  const std::string& token_bytes(uint32_t id) const;
  // Per id: the token's length in bytes; 0 for special tokens and unused ids (for bits per byte).
  std::vector<int32_t> token_byte_lengths() const;
  const std::string& pattern() const;

 private:
  explicit Tokenizer(std::shared_ptr<const detail::TokenizerImpl> impl);
  std::shared_ptr<const detail::TokenizerImpl> impl_;
};

}  // namespace hgpt::tokenizer
