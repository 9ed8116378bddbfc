// bench_tokenizer — tokenizer throughput on generated pseudo-text (or --input files): training time
// (Tokenizer::train, as tok_train runs it) and encode MB/s with 1 thread and with all threads.
// Usage: bench_tokenizer [--mb 16] [--train_mb 8] [--vocab_size 16384] [--tokenizer DIR]
//                       [--input FILE...] [--json]
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <thread>

#include "hgpt/errors.h"
#include "hgpt/tokenizer/documents.h"
#include "hgpt/tokenizer/pseudo_text.h"
#include "hgpt/tokenizer/tokenizer.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

void report(bool json, const std::string& metric, double value, const std::string& unit, int threads,
            const std::string& extra = "") {
  if (json)
    std::printf(
        "{\"bench\": \"tokenizer\", \"metric\": \"%s\", \"value\": %.4f, \"unit\": \"%s\", \"threads\": %d%s}\n",
        metric.c_str(), value, unit.c_str(), threads, extra.c_str());
  else
    std::printf("%-22s %10.3f %-6s (threads %d)\n", metric.c_str(), value, unit.c_str(), threads);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Tokenizer benchmark: train time, encode throughput"};
  double mb = 16, train_mb = 8;
  int64_t vocab_size = 16384;
  std::string tokenizer_dir;
  std::vector<std::string> inputs;
  bool json = false;
  int repeats = 2;
  app.add_option("--mb", mb, "size of the encoded corpus in MB")->capture_default_str();
  app.add_option("--train_mb", train_mb, "size of the training corpus in MB")->capture_default_str();
  app.add_option("--vocab_size", vocab_size, "vocabulary size to train")->capture_default_str();
  app.add_option("--tokenizer", tokenizer_dir, "benchmark this tokenizer directory instead of training one");
  app.add_option("--repeats", repeats, "encode passes per setting (best is reported)")->capture_default_str();
  app.add_option("--input", inputs, "encode the documents of these text/JSONL files instead of generated pseudo-text");
  app.add_flag("--json", json, "one JSON object per line");
  CLI11_PARSE(app, argc, argv);
  try {
    using namespace hgpt::tokenizer;
    const int all_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    Tokenizer tok = [&] {
      if (!tokenizer_dir.empty()) return Tokenizer::load(tokenizer_dir);
      auto train_docs = pseudo_text(static_cast<int64_t>(train_mb * 1e6), 1);
      TrainOptions opt;
      opt.vocab_size = vocab_size;
      const auto t0 = Clock::now();
      Tokenizer t = Tokenizer::train(train_docs, opt);
      const double s = seconds_since(t0);
      report(json, "train_seconds", s, "s", all_threads,
             ", \"train_mb\": " + std::to_string(train_mb) + ", \"vocab_size\": " + std::to_string(t.vocab_size()));
      return t;
    }();

    // A different seed from training: encoding text the tokenizer has not seen verbatim.
    std::vector<std::string> docs;
    if (inputs.empty()) {
      docs = pseudo_text(static_cast<int64_t>(mb * 1e6), 2);
    } else {
      DocumentReader reader(inputs);
      for (std::string d; reader.next(d);) docs.push_back(std::move(d));
    }
    int64_t bytes = 0;
    for (const auto& d : docs) bytes += static_cast<int64_t>(d.size());
    int64_t tokens = 0;
    for (int threads : {1, all_threads}) {
      double best = 1e30;
      for (int r = 0; r < repeats; ++r) {
        const auto t0 = Clock::now();
        auto out = tok.encode_batch(docs, threads);
        best = std::min(best, seconds_since(t0));
        tokens = 0;
        for (const auto& o : out) tokens += static_cast<int64_t>(o.size());
      }
      report(json, "encode_mb_per_s", bytes / 1e6 / best, "MB/s", threads,
             ", \"mb\": " + std::to_string(bytes / 1e6) +
                 ", \"bytes_per_token\": " + std::to_string(static_cast<double>(bytes) / static_cast<double>(tokens)));
      if (all_threads == 1) break;
    }
    // Decode for completeness (single thread).
    auto ids = tok.encode_batch(docs, all_threads);
    const auto t0 = Clock::now();
    int64_t decoded = 0;
    for (const auto& v : ids) decoded += static_cast<int64_t>(tok.decode(v).size());
    report(json, "decode_mb_per_s", decoded / 1e6 / seconds_since(t0), "MB/s", 1);
  } catch (const hgpt::UserError& e) {
    std::cerr << "error: " << e.what() << "\n";
    return hgpt::kExitUserError;
  }
  return 0;
}
