// encode.cpp — BPE encoding: split the text with the regex, then merge each piece's bytes
// by lowest rank first (tiktoken's rule; ties → leftmost pair), and the multi-threaded batch encoder.
#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <queue>
#include <thread>

#include "src/tokenizer/tokenizer_impl.h"

namespace hgpt::tokenizer {
namespace detail {
namespace {

constexpr uint32_t kNoMerge = ~uint32_t{0};
// Pieces up to this many bytes use the quadratic scan (fast for the short pieces that dominate
// real text); longer ones use a heap so a pathological piece costs O(n log n), not O(n²).
constexpr size_t kScanLimit = 128;

inline uint32_t merge_of(const PairMap<uint32_t>& merges, uint32_t a, uint32_t b) {
  const uint32_t* m = merges.find(pair_key(a, b));
  return m ? *m : kNoMerge;
}

void encode_scan(const TokenizerImpl& t, std::string_view piece, std::vector<uint32_t>& out) {
  thread_local std::vector<uint32_t> ids, ranks;
  const size_t n = piece.size();
  ids.resize(n);
  for (size_t i = 0; i < n; ++i) ids[i] = t.byte_id[static_cast<unsigned char>(piece[i])];
  ranks.resize(n - 1);
  for (size_t i = 0; i + 1 < n; ++i) ranks[i] = merge_of(t.merges, ids[i], ids[i + 1]);
  while (ranks.size() > 0) {
    size_t best = 0;
    for (size_t i = 1; i < ranks.size(); ++i)
      if (ranks[i] < ranks[best]) best = i;  // strict: the leftmost of equal ranks wins
    if (ranks[best] == kNoMerge) break;
    ids[best] = ranks[best];
    ids.erase(ids.begin() + best + 1);
    ranks.erase(ranks.begin() + best);
    if (best > 0) ranks[best - 1] = merge_of(t.merges, ids[best - 1], ids[best]);
    if (best < ranks.size()) ranks[best] = merge_of(t.merges, ids[best], ids[best + 1]);
  }
  out.insert(out.end(), ids.begin(), ids.end());
}

void encode_heap(const TokenizerImpl& t, std::string_view piece, std::vector<uint32_t>& out) {
  const int n = static_cast<int>(piece.size());
  std::vector<uint32_t> ids(n);
  std::vector<int> next(n), prev(n);
  for (int i = 0; i < n; ++i) {
    ids[i] = t.byte_id[static_cast<unsigned char>(piece[i])];
    next[i] = i + 1 < n ? i + 1 : -1;
    prev[i] = i - 1;
  }
  // (rank, position of the left part): smallest rank first, then leftmost, as in the scan.
  using Entry = std::pair<uint32_t, int>;
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> heap;
  auto push = [&](int left) {
    if (left < 0 || next[left] < 0) return;
    const uint32_t m = merge_of(t.merges, ids[left], ids[next[left]]);
    if (m != kNoMerge) heap.push({m, left});
  };
  for (int i = 0; i + 1 < n; ++i) push(i);
  std::vector<uint8_t> alive(n, 1);
  while (!heap.empty()) {
    auto [rank, left] = heap.top();
    heap.pop();
    // Stale entries: the left part died, or either side changed since the entry was pushed.
    if (!alive[left] || next[left] < 0 || merge_of(t.merges, ids[left], ids[next[left]]) != rank) continue;
    const int right = next[left];
    ids[left] = rank;
    alive[right] = 0;
    next[left] = next[right];
    if (next[right] >= 0) prev[next[right]] = left;
    push(prev[left]);
    push(left);
  }
  for (int i = 0; i >= 0 && i < n; i = next[i]) out.push_back(ids[i]);
}

}  // namespace

void TokenizerImpl::encode_piece(std::string_view piece, std::vector<uint32_t>& out) const {
  if (piece.size() == 1) {
    out.push_back(byte_id[static_cast<unsigned char>(piece[0])]);
    return;
  }
  auto whole = bytes_to_id.find(piece);  // most pieces of real text are a single token
  if (whole != bytes_to_id.end()) {
    out.push_back(whole->second);
    return;
  }
  if (piece.size() <= kScanLimit)
    encode_scan(*this, piece, out);
  else
    encode_heap(*this, piece, out);
}

void TokenizerImpl::encode_into(std::string_view text, std::vector<uint32_t>& out) const {
  thread_local std::vector<std::string_view> pieces;
  pieces.clear();
  regex->split(text, pieces);
  for (std::string_view p : pieces) encode_piece(p, out);
}

}  // namespace detail

std::vector<uint32_t> Tokenizer::encode(std::string_view text) const {
  std::vector<uint32_t> out;
  out.reserve(text.size() / 3 + 8);
  impl_->encode_into(text, out);
  return out;
}

std::vector<std::vector<uint32_t>> Tokenizer::encode_batch(const std::vector<std::string>& texts, int threads) const {
  std::vector<std::vector<uint32_t>> out(texts.size());
  int n_threads = threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  n_threads = static_cast<int>(std::min<size_t>(n_threads, texts.size()));
  if (n_threads <= 1) {
    for (size_t i = 0; i < texts.size(); ++i) out[i] = encode(texts[i]);
    return out;
  }
  std::atomic<size_t> next{0};
  std::exception_ptr error;  // the first failure of any worker, rethrown on the calling thread
  std::mutex error_mutex;
  auto worker = [&] {
    try {
      for (size_t i = next++; i < texts.size(); i = next++) out[i] = encode(texts[i]);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
      next = texts.size();
    }
  };
  std::vector<std::thread> pool;
  for (int k = 1; k < n_threads; ++k) pool.emplace_back(worker);
  worker();
  for (auto& th : pool) th.join();
  if (error) std::rethrow_exception(error);
  return out;
}

}  // namespace hgpt::tokenizer
