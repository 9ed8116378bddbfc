// tokenize — encodes parquet / JSONL / text files with a trained tokenizer into llm.c-format token
// shards: <|bos|> before every document, fixed-size shards, the first shard (or a fraction of the
// documents) kept for validation. Usage:
//   tokenize --tokenizer DIR --out DIR [--prefix data] [--shard_size 100000000]
//            [--val_fraction F] [--text_column text] [--skip-bad] FILES...
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <future>
#include <iostream>
#include <thread>

#include "hgpt/cli.h"
#include "hgpt/data/shards.h"
#include "hgpt/errors.h"
#include "hgpt/files.h"
#include "hgpt/strings.h"
#include "hgpt/tokenizer/documents.h"
#include "hgpt/tokenizer/tokenizer.h"

namespace {

using Clock = std::chrono::steady_clock;

// Cuts one token stream into shards of exactly shard_size tokens (the last one shorter); shard
// numbers are shared by all writers so every file name is unique and in writing order. Memory: one
// shard's bytes.
class ShardWriter {
 public:
  ShardWriter(std::string out_dir, std::string prefix, int64_t shard_size, bool wide, int* next_index,
              std::function<bool(int)> is_val)
      : out_dir_(std::move(out_dir)),
        prefix_(std::move(prefix)),
        shard_size_(shard_size),
        next_index_(next_index),
        is_val_(std::move(is_val)),
        shard_(wide, shard_size) {}

  void add(uint32_t bos, const std::vector<uint32_t>& doc) {
    add_tokens(&bos, 1);
    add_tokens(doc.data(), doc.size());
  }
  void finish() {
    if (shard_.size() > 0) flush();
  }
  int64_t tokens() const { return tokens_; }
  int shards() const { return shards_; }

 private:
  void add_tokens(const uint32_t* tokens, size_t count) {
    while (count > 0) {
      const size_t take = std::min(count, static_cast<size_t>(shard_size_ - shard_.size()));
      shard_.append(tokens, take);
      tokens += take, count -= take;
      if (shard_.size() == shard_size_) flush();
    }
  }
  void flush() {
    const int index = (*next_index_)++;
    char name[64];
    std::snprintf(name, sizeof(name), "_%s_%06d.bin", is_val_(index) ? "val" : "train", index);
    tokens_ += shard_.size();
    ++shards_;
    shard_.write(out_dir_ + "/" + prefix_ + name);
  }

  std::string out_dir_, prefix_;
  int64_t shard_size_;
  int* next_index_;
  std::function<bool(int)> is_val_;
  hgpt::data::ShardBuilder shard_;
  int64_t tokens_ = 0;
  int shards_ = 0;
};

// The shards are written into a staging folder beside --out, renamed to --out only once every
// shard is written: --out never holds a partial dataset, nor old shards mixed with new ones
// (base_train reads every *.bin of the folder). A run that fails removes its staging folder.
class StagedOutput {
 public:
  // `out` as checked_output_folder returns it: no trailing slash, not a link.
  explicit StagedOutput(std::string out) : out_(std::move(out)) {
    if (hgpt::is_directory(out_)) {
      const auto entries = hgpt::list_dir(out_);
      if (!entries.empty())
        throw hgpt::UserError("--out " + out_ + " is not empty (it holds " + entries.front() +
                              (entries.size() > 1 ? ", ..." : "") +
                              "); old and new shards would mix: give a new or empty folder, or delete this one first");
    }
    staging_ = out_ + ".partial-" + std::to_string(::getpid());
    hgpt::make_dirs(staging_);
  }
  ~StagedOutput() {
    if (committed_) return;
    for (const auto& name : hgpt::list_dir(staging_)) ::unlink(hgpt::path_join(staging_, name).c_str());
    ::rmdir(staging_.c_str());
  }
  StagedOutput(const StagedOutput&) = delete;
  StagedOutput& operator=(const StagedOutput&) = delete;

  const std::string& dir() const { return staging_; }
  void commit() {
    if (hgpt::is_directory(out_)) ::rmdir(out_.c_str());  // empty (checked at the start)
    if (::rename(staging_.c_str(), out_.c_str()) != 0)
      throw hgpt::UserError("cannot rename " + staging_ + " to " + out_ + ": " + std::strerror(errno));
    committed_ = true;
  }

 private:
  std::string out_, staging_;
  bool committed_ = false;
};

int run(int argc, char** argv) {
  CLI::App app{"Encode parquet/JSONL/text files into llm.c-format token shards"};
  std::string tokenizer_dir, out, prefix = "data";
  int64_t shard_size = 100'000'000;
  double val_fraction = 0;
  int threads = 0;
  bool skip_bad = false, whole_files = false;
  std::string text_column = "text";
  std::vector<std::string> files;
  app.add_option("--tokenizer", tokenizer_dir, "tokenizer directory (tokenizer.tiktoken + tokenizer.json)")->required();
  app.add_option("--out", out, "output directory for the shards")->required();
  app.add_option("--prefix", prefix, "shard name prefix: <prefix>_val_000000.bin, <prefix>_train_000001.bin")
      ->capture_default_str();
  app.add_option("--shard_size", shard_size, "tokens per shard")->capture_default_str();
  app.add_option("--val_fraction", val_fraction,
                 "fraction of the documents for validation (evenly spaced); 0: the first shard is validation")
      ->capture_default_str();
  app.add_option("--threads", threads, "encoding threads (0: all cores)")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  app.add_flag("--skip-bad,--skip_bad", skip_bad,
               "skip unreadable, damaged or non-text files and invalid JSON lines (counted)");
  app.add_option("--text_column", text_column, "the text: a parquet file's string column, a JSONL line's field")
      ->capture_default_str();
  app.add_flag("--whole_files", whole_files, "a plain-text file is one document (default: split on blank lines)");
  app.add_option("files", files,
                 "*.parquet (nanochat's shards), *.jsonl (one {\"text\": ...} per line) or plain-text files")
      ->required();
  if (const auto stop = hgpt::parse_command_line(app, argc, argv)) return *stop;
  if (shard_size <= 0 || shard_size > INT32_MAX) throw hgpt::UserError("--shard_size must be in [1, 2^31)");
  if (!(val_fraction >= 0 && val_fraction < 1)) throw hgpt::UserError("--val_fraction must be in [0, 1)");
  if (prefix.empty() || prefix.find('/') != std::string::npos) throw hgpt::UserError("--prefix must be a plain name");
  if (("_" + prefix + "_").find("_val_") != std::string::npos)
    throw hgpt::UserError("--prefix '" + prefix + "' holds '_val_' or 'val_', which would make base_train read " +
                          "the training shards as validation; choose another prefix");

  out = hgpt::checked_output_folder("--out", out, "the shards are files in a folder");
  const hgpt::tokenizer::Tokenizer tok = hgpt::tokenizer::Tokenizer::load(tokenizer_dir);
  const uint32_t bos = tok.bos_id();
  const bool wide = tok.vocab_size() > 65536;  // one width for every shard of the dataset
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  StagedOutput staged(out);

  int next_index = 0;
  std::unique_ptr<ShardWriter> val, train;
  const std::string& dir = staged.dir();
  if (val_fraction > 0) {
    val = std::make_unique<ShardWriter>(dir, prefix, shard_size, wide, &next_index, [](int) { return true; });
    train = std::make_unique<ShardWriter>(dir, prefix, shard_size, wide, &next_index, [](int) { return false; });
  } else {  // llm.c's layout: one stream whose first shard is the validation shard
    train = std::make_unique<ShardWriter>(dir, prefix, shard_size, wide, &next_index, [](int i) { return i == 0; });
  }

  hgpt::tokenizer::DocumentReader reader(files,
                                         hgpt::tokenizer::DocumentReaderOptions{whole_files, skip_bad, text_column});
  const auto start = Clock::now();
  auto last_report = start;
  int64_t docs = 0, tokens = 0;
  // Reading (and JSON parsing) of the next batch overlaps the encoding of the current one.
  // Batches are big enough to keep every core busy, small enough to bound memory.
  bool more = true;
  struct Batch {
    std::vector<std::string> docs;
    int64_t bytes_read = 0;  // the reader's position after this batch (read here: no race)
  };
  auto read_batch = [&] {
    Batch b;
    auto& batch = b.docs;
    size_t batch_bytes = 0;
    std::string doc;
    while (batch_bytes < (32u << 20) && (more = reader.next(doc))) {
      batch_bytes += doc.size();
      batch.push_back(std::move(doc));
      doc.clear();
    }
    b.bytes_read = reader.bytes_read();
    return b;
  };
  std::future<Batch> pending = std::async(std::launch::async, read_batch);
  while (pending.valid()) {
    const Batch batch = pending.get();
    if (more) pending = std::async(std::launch::async, read_batch);
    auto encoded = tok.encode_batch(batch.docs, threads);
    for (const auto& ids : encoded) {
      // Evenly spaced validation documents: doc i is val when floor((i+1)·f) > floor(i·f).
      const bool to_val = val && std::floor((docs + 1) * val_fraction) > std::floor(docs * val_fraction);
      (to_val ? *val : *train).add(bos, ids);
      tokens += static_cast<int64_t>(ids.size()) + 1;
      ++docs;
    }
    const auto now = Clock::now();
    if (!pending.valid() || now - last_report > std::chrono::seconds(1)) {
      last_report = now;
      const double t = std::chrono::duration<double>(now - start).count();
      const double done = static_cast<double>(batch.bytes_read);
      const double total = static_cast<double>(std::max<int64_t>(1, reader.total_bytes()));
      std::fprintf(stderr, "tokenize: %5.1f%%  %.1f/%.1f MB  %.2f MB/s  %lld docs  %.2f M tokens  ETA %s\n",
                   100 * std::min(1.0, done / total), done / 1e6, total / 1e6, done / 1e6 / std::max(t, 1e-9),
                   static_cast<long long>(docs), tokens / 1e6,
                   hgpt::format_duration(done > 0 ? t * (total - done) / done : -1).c_str());
    }
  }
  // Shards of nothing but <|bos|> tokens would train on nothing: refuse (the staging folder goes).
  if (docs == 0 || tokens == docs)
    throw hgpt::UserError("the files hold no text to encode (" +
                          (docs == 0 ? std::string("no documents") : std::to_string(docs) + " documents, all empty") +
                          (reader.skipped_summary().empty() ? "" : "; " + reader.skipped_summary()) +
                          "); check --text_column and the files; nothing was written to " + out);
  if (val) val->finish();
  train->finish();
  staged.commit();
  const int64_t val_tokens = val ? val->tokens() : std::min<int64_t>(shard_size, train->tokens());
  const int64_t train_tokens = (val ? 0 : -val_tokens) + train->tokens();
  if (!reader.skipped_summary().empty()) std::cerr << "tokenize: " << reader.skipped_summary() << "\n";
  if (train_tokens == 0)
    std::cerr << "tokenize: warning: no training shard was written (all " << tokens
              << " tokens went to validation); use a smaller --shard_size or --val_fraction\n";
  if (val_tokens == 0) std::cerr << "tokenize: warning: no validation shard was written\n";
  const double t = std::chrono::duration<double>(Clock::now() - start).count();
  std::fprintf(stderr, "tokenize: %lld docs → %lld tokens (%lld val, %lld train) in %d shards (%s) in %.1fs → %s\n",
               static_cast<long long>(docs), static_cast<long long>(tokens), static_cast<long long>(val_tokens),
               static_cast<long long>(train_tokens), next_index, wide ? "uint32" : "uint16", t, out.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return hgpt::run_tool([&] { return run(argc, argv); });
}
