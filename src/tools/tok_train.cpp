// tok_train — trains the byte-level BPE tokenizer on parquet / JSONL / text files (or on generated
// pseudo-text, tokenizer/pseudo_text.h, when no file is given) and writes DIR/tokenizer.tiktoken
// + DIR/tokenizer.json.
// Usage: tok_train --out DIR [--vocab_size 65536] [--max_chars 2e9] [--doc_cap 10000] [--text_column text] FILES...
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>

#include "hgpt/cli.h"
#include "hgpt/errors.h"
#include "hgpt/files.h"
#include "hgpt/strings.h"
#include "hgpt/tokenizer/documents.h"
#include "hgpt/tokenizer/pseudo_text.h"
#include "hgpt/tokenizer/tokenizer.h"
#include "hgpt/tokenizer/utf8.h"

namespace {

using Clock = std::chrono::steady_clock;

int run(int argc, char** argv) {
  CLI::App app{"Train a byte-level BPE tokenizer (tiktoken format) on parquet/JSONL/text files"};
  std::string out;
  int64_t vocab_size = 65536;
  double max_chars = 2e9;
  int64_t doc_cap = 10000;
  int threads = 0;
  bool whole_files = false, skip_bad = false, overwrite = false;
  std::string text_column = "text";
  std::vector<std::string> files;
  app.add_option("--out", out, "output tokenizer directory")->required();
  app.add_option("--vocab_size", vocab_size, "vocabulary size including the special tokens")->capture_default_str();
  app.add_option("--max_chars", max_chars, "stop reading after this many characters (e.g. 2e9)")->capture_default_str();
  app.add_option("--doc_cap", doc_cap, "keep at most this many characters of each document")->capture_default_str();
  app.add_option("--threads", threads, "worker threads (0: all cores)")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  app.add_flag("--overwrite", overwrite, "replace a tokenizer already in --out");
  app.add_flag("--whole_files", whole_files, "a plain-text file is one document (default: split on blank lines)");
  app.add_flag("--skip-bad,--skip_bad", skip_bad,
               "skip unreadable, damaged or non-text files and invalid JSON lines (counted)");
  app.add_option("--text_column", text_column, "the text: a parquet file's string column, a JSONL line's field")
      ->capture_default_str();
  app.add_option("files", files,
                 "*.parquet (nanochat's shards), *.jsonl (one {\"text\": ...} per line) or plain-text files; none: "
                 "built-in corpus");
  if (const auto stop = hgpt::parse_command_line(app, argc, argv)) return *stop;
  if (vocab_size < 256 + 9 || vocab_size > (int64_t{1} << 31))
    throw hgpt::UserError("--vocab_size must be in [265, 2^31] (256 bytes + 9 special tokens at least)");
  if (!(max_chars >= 1 && max_chars <= 1e18)) throw hgpt::UserError("--max_chars must be in [1, 1e18]");
  out = hgpt::checked_output_folder("--out", out, "the tokenizer is two files in a folder");
  for (const char* name : {"tokenizer.json", "tokenizer.tiktoken"}) {
    const std::string existing = hgpt::path_join(out, name);
    if (hgpt::path_exists(existing) && !overwrite)
      throw hgpt::UserError("--out " + out + " already holds a tokenizer (" + existing +
                            "); choose another --out, or pass --overwrite to replace it");
  }
  if (doc_cap <= 0) throw hgpt::UserError("--doc_cap must be positive");

  const auto start = Clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };
  const auto budget = static_cast<int64_t>(max_chars);

  std::vector<std::string> builtin;
  std::unique_ptr<hgpt::tokenizer::DocumentReader> reader;
  if (files.empty()) {
    const int64_t bytes = std::min<int64_t>(budget, 20'000'000);
    std::cerr << "tok_train: no files given, training on the built-in synthetic corpus (" << bytes / 1000000
              << " MB)\n";
    builtin = hgpt::tokenizer::pseudo_text(bytes);
  } else {
    reader = std::make_unique<hgpt::tokenizer::DocumentReader>(
        files, hgpt::tokenizer::DocumentReaderOptions{whole_files, skip_bad, text_column});
  }
  size_t builtin_index = 0;
  int64_t chars = 0, docs = 0;
  hgpt::tokenizer::DocumentSource source = [&](std::string& doc) {
    if (chars >= budget) return false;
    if (reader) {
      if (!reader->next(doc)) return false;
    } else {
      if (builtin_index >= builtin.size()) return false;
      doc = builtin[builtin_index++];
    }
    doc = hgpt::tokenizer::truncate_utf8_chars(std::move(doc), doc_cap);
    chars += hgpt::tokenizer::count_utf8_chars(doc);
    ++docs;
    return true;
  };

  double merge_start = -1;
  hgpt::tokenizer::TrainOptions opt;
  opt.vocab_size = vocab_size;
  opt.threads = threads;
  opt.progress = [&](const hgpt::tokenizer::TrainProgress& p) {
    const double t = elapsed();
    if (p.phase == "count") {
      // Fraction of the input done: by characters against the budget, or by bytes of the files.
      double frac = static_cast<double>(chars) / static_cast<double>(budget);
      if (reader && reader->total_bytes() > 0)
        frac = std::max(frac, static_cast<double>(reader->bytes_read()) / static_cast<double>(reader->total_bytes()));
      if (!reader) frac = std::max(frac, static_cast<double>(builtin_index) / std::max<size_t>(1, builtin.size()));
      std::fprintf(stderr, "tok_train: counting %6.1f%%  %lld docs  %.1f M chars  %.1f MB/s  ETA %s\n",
                   100 * std::min(frac, 1.0), static_cast<long long>(docs), chars / 1e6,
                   p.done / 1e6 / std::max(t, 1e-9), hgpt::format_duration(frac > 0 ? t / frac - t : -1).c_str());
    } else {
      if (merge_start < 0) merge_start = t;
      const double mt = t - merge_start;
      const double frac = p.total > 0 ? static_cast<double>(p.done) / static_cast<double>(p.total) : 1.0;
      std::fprintf(stderr, "tok_train: merges %lld/%lld (%.1f%%)  ETA %s\n", static_cast<long long>(p.done),
                   static_cast<long long>(p.total), 100 * frac,
                   hgpt::format_duration(frac > 0 ? mt / frac - mt : -1).c_str());
    }
  };
  hgpt::tokenizer::Tokenizer tok = hgpt::tokenizer::Tokenizer::train(source, opt);
  // A tokenizer of no text has no merges: refuse it rather than write one that looks trained.
  if (reader && chars == 0)
    throw hgpt::UserError("the files hold no text to train on (" + std::to_string(docs) + " documents, 0 characters" +
                          (reader->skipped_summary().empty() ? "" : "; " + reader->skipped_summary()) +
                          "); check --text_column and the files; nothing was written to " + out);
  tok.save(out);
  if (reader && !reader->skipped_summary().empty()) std::cerr << "tok_train: " << reader->skipped_summary() << "\n";
  if (tok.vocab_size() < vocab_size)
    std::cerr << "tok_train: warning: the corpus ran out of pairs; vocab_size is " << tok.vocab_size() << ", not "
              << vocab_size << "\n";
  std::fprintf(stderr, "tok_train: %lld docs, %.1f M chars, vocab %lld (%lld merges + %zu special) in %.1fs → %s\n",
               static_cast<long long>(docs), chars / 1e6, static_cast<long long>(tok.vocab_size()),
               static_cast<long long>(tok.num_ranks() - 256), tok.special_tokens().size(), elapsed(), out.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return hgpt::run_tool([&] { return run(argc, argv); });
}
