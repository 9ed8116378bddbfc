// train_bpe.cpp — BPE training. Phase 1 ("count"): documents are split by the regex on all
// cores and identical pieces counted. Phase 2 ("merge"): pair counts are built once, then kept up
// to date incrementally — each merge touches only the words that contain the merged pair — with a
// lazy max-heap picking the next pair. Tie-break: highest count, then the smallest (left, right) id pair.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <mutex>
#include <queue>
#include <thread>
#include <unordered_map>

#include "hgpt/errors.h"
#include "src/tokenizer/tokenizer_impl.h"

namespace hgpt::tokenizer {
namespace {

using detail::pair_key;
using detail::PairMap;
using PieceCounts = std::unordered_map<std::string, int64_t>;

struct Word {
  std::vector<uint32_t> ids;
  int64_t count = 0;
};

// Reads all documents, splitting and counting pieces on `threads` workers, batch by batch.
PieceCounts count_pieces(const DocumentSource& next_document, const detail::SplitRegex& regex, int threads,
                         const std::function<void(const TrainProgress&)>& progress) {
  constexpr size_t kBatchBytes = 16u << 20;  // enough work per batch to keep every worker busy
  std::vector<PieceCounts> local(threads);
  std::vector<std::string> batch;
  int64_t bytes_read = 0;
  bool more = true;
  auto last_report = std::chrono::steady_clock::now();
  while (more) {
    batch.clear();
    size_t batch_bytes = 0;
    std::string doc;
    while (batch_bytes < kBatchBytes && (more = next_document(doc))) {
      batch_bytes += doc.size();
      batch.push_back(std::move(doc));
      doc.clear();
    }
    std::atomic<size_t> next{0};
    std::exception_ptr error;  // first worker failure (e.g. out of memory), rethrown here
    std::mutex error_mutex;
    auto worker = [&](int k) {
      try {
        std::vector<std::string_view> pieces;
        PieceCounts& counts = local[k];
        for (size_t i = next++; i < batch.size(); i = next++) {
          pieces.clear();
          regex.split(batch[i], pieces);
          for (std::string_view p : pieces) ++counts[std::string(p)];
        }
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
        next = batch.size();
      }
    };
    std::vector<std::thread> pool;
    for (int k = 1; k < threads; ++k) pool.emplace_back(worker, k);
    worker(0);
    for (auto& t : pool) t.join();
    if (error) std::rethrow_exception(error);
    bytes_read += static_cast<int64_t>(batch_bytes);
    const auto now = std::chrono::steady_clock::now();
    if (progress && (!more || now - last_report > std::chrono::milliseconds(500))) {
      progress({"count", bytes_read, 0});
      last_report = now;
    }
  }
  PieceCounts total = std::move(local[0]);
  for (int k = 1; k < threads; ++k)
    for (auto& [piece, c] : local[k]) total[piece] += c;
  return total;
}

struct HeapEntry {
  int64_t count;
  uint64_t pair;
};
// std::priority_queue puts the "largest" on top: higher count first, then the smaller pair key,
// i.e. the lexicographically smallest (left id, right id).
struct HeapOrder {
  bool operator()(const HeapEntry& x, const HeapEntry& y) const {
    return x.count != y.count ? x.count < y.count : x.pair > y.pair;
  }
};

// Runs up to n_merges merges over the words; returns the new tokens' bytes in merge order.
std::vector<std::string> merge_words(std::vector<Word>& words, int64_t n_merges,
                                     const std::function<void(const TrainProgress&)>& progress) {
  std::vector<std::string> bytes(256);
  std::unordered_map<std::string, uint32_t> index;  // bytes → id, to catch duplicate spellings
  for (int b = 0; b < 256; ++b) {
    bytes[b] = std::string(1, static_cast<char>(b));
    index.emplace(bytes[b], b);
  }

  PairMap<int64_t> counts(1 << 16);
  PairMap<std::vector<uint32_t>> where(1 << 16);  // pair → words that (may) contain it
  for (uint32_t w = 0; w < words.size(); ++w) {
    const auto& ids = words[w].ids;
    for (size_t i = 0; i + 1 < ids.size(); ++i) {
      const uint64_t k = pair_key(ids[i], ids[i + 1]);
      counts[k] += words[w].count;
      auto& list = where[k];
      if (list.empty() || list.back() != w) list.push_back(w);
    }
  }
  std::priority_queue<HeapEntry, std::vector<HeapEntry>, HeapOrder> heap;
  counts.for_each([&](uint64_t k, int64_t c) { heap.push({c, k}); });

  std::vector<std::pair<uint64_t, int64_t>> deltas;
  std::vector<uint32_t> merged;
  auto last_report = std::chrono::steady_clock::now();
  int64_t done = 0;
  while (done < n_merges && !heap.empty()) {
    const HeapEntry top = heap.top();
    heap.pop();
    const int64_t current = *counts.find(top.pair);
    if (current <= 0) continue;
    if (current != top.count) {  // stale entry (the pair lost occurrences): requeue at its true count
      heap.push({current, top.pair});
      continue;
    }
    const uint32_t a = static_cast<uint32_t>(top.pair >> 32), b = static_cast<uint32_t>(top.pair);
    // Two different pairs can spell the same bytes ("a"+"ab" and "aa"+"b"). A token's bytes must
    // be unique (tiktoken maps bytes → rank), so the later pair merges into the existing token —
    // exactly what the encoder does with it — and adds no rank.
    std::string joined = bytes[a] + bytes[b];
    uint32_t id;
    bool fresh = false;
    if (auto it = index.find(joined); it != index.end()) {
      id = it->second;
    } else {
      id = static_cast<uint32_t>(bytes.size());
      index.emplace(joined, id);
      bytes.push_back(std::move(joined));
      fresh = true;
    }

    std::vector<uint32_t> list = std::move(where[top.pair]);
    where[top.pair] = {};
    deltas.clear();
    for (uint32_t w : list) {
      auto& ids = words[w].ids;
      const int64_t c = words[w].count;
      bool has = false;
      for (size_t i = 0; i + 1 < ids.size() && !has; ++i) has = ids[i] == a && ids[i + 1] == b;
      if (!has) continue;  // the pair left this word in an earlier merge
      for (size_t i = 0; i + 1 < ids.size(); ++i) deltas.push_back({pair_key(ids[i], ids[i + 1]), -c});
      merged.clear();
      for (size_t i = 0; i < ids.size();) {  // left to right, non-overlapping (as encoding does)
        if (i + 1 < ids.size() && ids[i] == a && ids[i + 1] == b) {
          merged.push_back(id);
          i += 2;
        } else {
          merged.push_back(ids[i++]);
        }
      }
      ids.assign(merged.begin(), merged.end());
      for (size_t i = 0; i + 1 < ids.size(); ++i) {
        const uint64_t k = pair_key(ids[i], ids[i + 1]);
        deltas.push_back({k, c});
        if (ids[i] == id || ids[i + 1] == id) {  // a pair new to this word
          auto& l = where[k];
          if (l.empty() || l.back() != w) l.push_back(w);
        }
      }
    }
    // Net change per pair; pairs that gained occurrences need a fresh heap entry (lost ones are
    // fixed lazily when their stale entry reaches the top).
    std::sort(deltas.begin(), deltas.end());
    for (size_t i = 0; i < deltas.size();) {
      const uint64_t k = deltas[i].first;
      int64_t net = 0;
      for (; i < deltas.size() && deltas[i].first == k; ++i) net += deltas[i].second;
      if (net == 0) continue;
      int64_t& c = counts[k];
      c += net;
      if (net > 0) heap.push({c, k});
    }
    if (!fresh) continue;
    ++done;
    const auto now = std::chrono::steady_clock::now();
    if (progress && (done == n_merges || now - last_report > std::chrono::milliseconds(500))) {
      progress({"merge", done, n_merges});
      last_report = now;
    }
  }
  return bytes;
}

}  // namespace

Tokenizer Tokenizer::train(const DocumentSource& next_document, const TrainOptions& options) {
  const int64_t n_special = static_cast<int64_t>(options.special_tokens.size());
  const int64_t n_merges = options.vocab_size - 256 - n_special;
  if (n_merges < 0)
    throw UserError("vocab_size " + std::to_string(options.vocab_size) + " is smaller than the 256 byte tokens + " +
                    std::to_string(n_special) + " special tokens");
  if (options.vocab_size > (int64_t{1} << 31)) throw UserError("vocab_size is too large");
  const detail::SplitRegex regex(options.pattern);  // validates the pattern before reading anything
  const int threads =
      options.threads > 0 ? options.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

  PieceCounts pieces = count_pieces(next_document, regex, threads, options.progress);
  // Sorted words: the merge loop does not depend on word order, but a fixed order keeps memory
  // layout and any future tie-break independent of hash-map iteration order.
  std::vector<std::pair<std::string, int64_t>> sorted(pieces.begin(), pieces.end());
  PieceCounts().swap(pieces);
  std::sort(sorted.begin(), sorted.end());
  std::vector<Word> words;
  words.reserve(sorted.size());
  for (auto& [piece, c] : sorted) {
    if (piece.size() < 2) continue;  // single bytes hold no pair
    Word w;
    w.ids.assign(reinterpret_cast<const unsigned char*>(piece.data()),
                 reinterpret_cast<const unsigned char*>(piece.data()) + piece.size());
    w.count = c;
    words.push_back(std::move(w));
  }
  decltype(sorted)().swap(sorted);

  std::vector<std::string> bytes = merge_words(words, n_merges, options.progress);
  std::vector<uint8_t> is_rank(bytes.size(), 1);
  std::map<std::string, uint32_t> specials;
  for (const std::string& name : options.special_tokens) {
    if (specials.count(name)) throw UserError("special token " + name + " is listed twice");
    const auto id = static_cast<uint32_t>(bytes.size() + specials.size());
    specials[name] = id;
  }
  return Tokenizer(detail::make_impl(std::move(bytes), std::move(is_rank), std::move(specials), options.pattern,
                                     "trained tokenizer"));
}

Tokenizer Tokenizer::train(const std::vector<std::string>& documents, const TrainOptions& options) {
  size_t i = 0;
  return train(
      [&](std::string& doc) {
        if (i >= documents.size()) return false;
        doc = documents[i++];
        return true;
      },
      options);
}

}  // namespace hgpt::tokenizer
