// test_real_data.cpp — the real-text path end to end, through the three binaries a user runs:
// tok_train (a BPE tokenizer from text) → tokenize (llm.c shards) → base_train with `data` and
// `tokenizer` set: it trains, reports bits per byte from the tokenizer's byte lengths, prints
// decoded samples, and refuses a vocab_size smaller than the tokenizer's; sample warns about a
// tokenizer that is not the run's; the tools' bad flags.
#include "tests/support/spawn.h"
#include "tests/train/train_test_util.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <fstream>

#include "hgpt/files.h"

namespace hgpt::testing {
namespace {

const std::string kTokTrain = std::string(HGPT_BUILD_DIR) + "/tok_train";
const std::string kTokenize = std::string(HGPT_BUILD_DIR) + "/tokenize";

// A few hundred short paragraphs of plain English-like text, separated by blank lines.
void write_corpus(const std::string& path) {
  const char* subjects[] = {"The river", "A small dog", "My neighbour", "The old train", "Every child"};
  const char* verbs[] = {"runs past", "looks at", "waits for", "talks about", "carries"};
  const char* objects[] = {"the green hill.", "a quiet house.", "the evening light.", "two red apples.", "the market."};
  std::ofstream out(path);
  for (int doc = 0; doc < 400; ++doc) {
    for (int s = 0; s < 4; ++s) {
      out << subjects[(doc + s) % 5] << ' ' << verbs[(doc * 3 + s) % 5] << ' ' << objects[(doc * 7 + s * 2) % 5] << ' ';
    }
    out << "Number " << doc << ".\n\n";
  }
}

// The last line of `output` that is a JSON object (a tool's --json result after its stderr lines).
nlohmann::json last_json(const std::string& output) {
  const size_t start = output.rfind("\n{");
  return nlohmann::json::parse(output.substr(start == std::string::npos ? 0 : start + 1));
}

ChildResult run(const std::vector<std::string>& argv) {
  ChildSpec spec;
  spec.argv = argv;
  spec.env = {{"OMP_NUM_THREADS", "1"}};
  return run_process(spec, std::chrono::seconds(300));
}

TEST(RealData, TokTrainTokenizeBaseTrain) {
  TempDir dir;
  write_corpus(dir.file("corpus.txt"));
  const auto trained = run({kTokTrain, "--out", dir.file("tok"), "--vocab_size", "320", dir.file("corpus.txt")});
  ASSERT_TRUE(trained.ok()) << trained.describe();
  const auto tokenized = run({kTokenize, "--tokenizer", dir.file("tok"), "--out", dir.file("shards"), "--shard_size",
                              "4000", dir.file("corpus.txt")});
  ASSERT_TRUE(tokenized.ok()) << tokenized.describe();

  const auto result =
      run_base_train({"--data=" + dir.file("shards"), "--tokenizer=" + dir.file("tok"), "--vocab_size=320",
                      "--num_iterations=3", "--sample_every=3", "--out_dir=" + dir.file("out")});
  ASSERT_TRUE(result.ok()) << result.describe();
  EXPECT_NE(result.output.find("sample: The capital of France is"), std::string::npos) << result.output;
  const auto records = read_jsonl(dir.file("out/d2/metrics.jsonl"));
  ASSERT_FALSE(records.empty());
  const auto& last = records.back();
  ASSERT_TRUE(last.contains("val_bpb")) << last.dump();
  const double bpb = last["val_bpb"].get<double>(), loss = last["val_loss"].get<double>();
  EXPECT_TRUE(std::isfinite(bpb) && bpb > 0) << bpb;
  // BPE tokens cover more than one byte on average, so bits per byte < bits per token.
  EXPECT_LT(bpb, loss / std::log(2.0)) << last.dump();
  EXPECT_FALSE(last.contains("acc_induction")) << "task accuracies belong to the built-in corpus only";

  // eval_tokens past the validation split (its first shard, 4000 tokens, in windows of
  // max_seq_len 32) counts each window once, and says so; not a million tokens of repeats.
  const std::string evaluate = std::string(HGPT_BUILD_DIR) + "/evaluate";
  const auto whole_split = run({evaluate, "--checkpoint", dir.file("out/d2"), "--eval_tokens", "1000000", "--json"});
  ASSERT_TRUE(whole_split.ok()) << whole_split.describe();
  const auto val_bytes = static_cast<int64_t>(file_size(dir.file("shards/data_val_000000.bin")));
  const int64_t val_windows = ((val_bytes - 256 * 4) / 2 - 1) / 32;  // llm.c header, uint16 tokens
  EXPECT_EQ(last_json(whole_split.output).at("eval_tokens_counted").get<int64_t>(), val_windows * 32)
      << whole_split.output;
  EXPECT_NE(whole_split.output.find("note: eval_tokens 1000000 is more than the validation split of " +
                                    dir.file("shards") + " (" + std::to_string(val_windows) +
                                    " windows of 32 tokens) holds: each window counts once"),
            std::string::npos)
      << whole_split.output;

  // sample with another tokenizer in place of the run's is refused; with the run's own it is quiet.
  ASSERT_TRUE(run({kTokTrain, "--out", dir.file("other_tok"), "--vocab_size", "300", dir.file("corpus.txt")}).ok());
  const std::string sample = std::string(HGPT_BUILD_DIR) + "/sample";
  const std::vector<std::string> args = {sample, "--checkpoint", dir.file("out/d2"), "--prompt", "The", "--max_tokens",
                                         "4"};
  auto with_tokenizer = [&](const std::string& tok) {
    auto argv = args;
    argv.insert(argv.end(), {"--tokenizer", tok});
    return run(argv);
  };
  const auto other = with_tokenizer(dir.file("other_tok")), same = with_tokenizer(dir.file("tok"));
  EXPECT_EQ(other.exit_code, 2) << other.describe();
  EXPECT_NE(other.output.find("error: --tokenizer '" + dir.file("other_tok") +
                              "' is not the tokenizer this model was trained with: its files differ"),
            std::string::npos)
      << other.output;
  ASSERT_TRUE(same.ok()) << same.describe();
  EXPECT_EQ(same.output.find("warning:"), std::string::npos) << same.output;

  // A tokenizer with more tokens than the model's vocabulary cannot be its tokenizer: one error line
  // that names the run's tokenizer (setting vocab_size is no fix for a trained model), no warning.
  ASSERT_TRUE(run({kTokTrain, "--out", dir.file("big_tok"), "--vocab_size", "400", dir.file("corpus.txt")}).ok());
  for (const auto& argv :
       {std::vector<std::string>{sample, "--checkpoint", dir.file("out/d2"), "--prompt", "The", "--tokenizer",
                                 dir.file("big_tok")},
        std::vector<std::string>{evaluate, "--checkpoint", dir.file("out/d2"), "--tokenizer", dir.file("big_tok")}}) {
    const auto big = run(argv);
    EXPECT_EQ(big.exit_code, 2) << big.describe();
    EXPECT_NE(big.output.find("error: --tokenizer '" + dir.file("big_tok") + "' has 400 tokens"), std::string::npos)
        << big.output;
    EXPECT_NE(big.output.find("'" + dir.file("tok") + "', or leave --tokenizer out"), std::string::npos) << big.output;
    EXPECT_EQ(big.output.find("warning:"), std::string::npos) << big.output;
    EXPECT_EQ(big.output.find("set vocab_size"), std::string::npos) << big.output;
  }

  // A run that recorded no tokenizer cannot compare one: a warning, and then its validation data
  // holds ids the smaller tokenizer lacks (the special tokens of the one of 320, <|bos|> among them,
  // are ids 311..319): an error, not bits per byte that count those tokens as no bytes.
  const auto untokenized = run_base_train({"--data=" + dir.file("shards"), "--vocab_size=320", "--num_iterations=1",
                                           "--out_dir=" + dir.file("out_shards_only")});
  ASSERT_TRUE(untokenized.ok()) << untokenized.describe();
  const auto lacking =
      run({evaluate, "--checkpoint", dir.file("out_shards_only/d2"), "--tokenizer", dir.file("other_tok")});
  EXPECT_EQ(lacking.exit_code, 2) << lacking.describe();
  EXPECT_NE(lacking.output.find("warning: --tokenizer '" + dir.file("other_tok") + "' may not be the tokenizer"),
            std::string::npos)
      << lacking.output;
  EXPECT_NE(lacking.output.find("tokens with ids past the tokenizer's 300, so it was not made with this tokenizer"),
            std::string::npos)
      << lacking.output;
  EXPECT_EQ(lacking.output.find("val loss"), std::string::npos) << lacking.output;

  // A run on the built-in corpus read bytes: no tokenizer stands in for them.
  const auto bytes_run =
      run_base_train({"--vocab_size=320", "--num_iterations=1", "--out_dir=" + dir.file("out_bytes")});
  ASSERT_TRUE(bytes_run.ok()) << bytes_run.describe();
  const auto on_bytes =
      run({sample, "--checkpoint", dir.file("out_bytes/d2"), "--prompt", "The", "--tokenizer", dir.file("tok")});
  EXPECT_EQ(on_bytes.exit_code, 2) << on_bytes.describe();
  EXPECT_NE(on_bytes.output.find("the run read the built-in corpus's bytes, not tokens; leave --tokenizer out"),
            std::string::npos)
      << on_bytes.output;

  // The run's tokenizer replaced in place (same path, other files): sample and resume refuse it,
  // naming the change; a copy of the original, elsewhere, is accepted as the run's tokenizer.
  make_dirs(dir.file("tok_copy"));
  for (const char* name : {"tokenizer.json", "tokenizer.tiktoken"})
    write_text(dir.file(std::string("tok_copy/") + name), read_text(dir.file(std::string("tok/") + name)));
  ASSERT_TRUE(
      run({kTokTrain, "--out", dir.file("tok"), "--overwrite", "--vocab_size", "310", dir.file("corpus.txt")}).ok());
  const auto replaced = run(args);
  EXPECT_EQ(replaced.exit_code, 2) << replaced.describe();
  EXPECT_NE(
      replaced.output.find("the run's tokenizer '" + dir.file("tok") + "' has changed since this model was trained"),
      std::string::npos)
      << replaced.output;
  const auto original = with_tokenizer(dir.file("tok_copy"));
  ASSERT_TRUE(original.ok()) << original.describe();
  EXPECT_EQ(original.output.find("warning:"), std::string::npos) << original.output;
  const auto resumed =
      run_base_train({"--data=" + dir.file("shards"), "--tokenizer=" + dir.file("tok"), "--vocab_size=320",
                      "--num_iterations=4", "--resume=true", "--out_dir=" + dir.file("out")});
  EXPECT_EQ(resumed.exit_code, 2) << resumed.describe();
  EXPECT_NE(resumed.output.find("'" + dir.file("tok") + "' has changed since this run started"), std::string::npos)
      << resumed.output;
}

// The tools' flags a hostile probe tried: each is one `error:` line and exit 2, before any work.
TEST(RealData, TokenizerToolsRefuseBadFlags) {
  TempDir dir;
  write_corpus(dir.file("corpus.txt"));
  auto expect_refused = [](const ChildResult& r, const std::string& needle) {
    EXPECT_EQ(r.exit_code, 2) << r.describe();
    EXPECT_NE(r.output.find("error: "), std::string::npos) << r.output;
    EXPECT_NE(r.output.find(needle), std::string::npos) << "missing '" << needle << "' in " << r.output;
  };
  const std::string corpus = dir.file("corpus.txt"), tok = dir.file("tok");
  expect_refused(run({kTokTrain, "--out", tok, "--threads", "100000", corpus}), "--threads");
  expect_refused(run({kTokTrain, "--out", tok, "--max_chars", "nan", corpus}), "--max_chars");
  write_text(dir.file("a_file"), "not a folder");
  expect_refused(run({kTokTrain, "--out", dir.file("a_file"), corpus}), "is a file, not a folder");
  ASSERT_TRUE(run({kTokTrain, "--out", tok, "--vocab_size", "300", corpus}).ok());
  const std::string ranks = read_text(tok + "/tokenizer.tiktoken");
  expect_refused(run({kTokTrain, "--out", tok, "--vocab_size", "320", corpus}), "already holds a tokenizer");
  EXPECT_EQ(read_text(tok + "/tokenizer.tiktoken"), ranks) << "a refused tok_train replaced the tokenizer";
  ASSERT_TRUE(run({kTokTrain, "--out", tok, "--vocab_size", "320", "--overwrite", corpus}).ok());
  EXPECT_NE(read_text(tok + "/tokenizer.tiktoken"), ranks);

  const std::vector<std::string> tokenize = {kTokenize, "--tokenizer", tok, "--out", dir.file("shards")};
  auto with = [&](std::vector<std::string> extra) {
    auto argv = tokenize;
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.push_back(corpus);
    return argv;
  };
  expect_refused(run(with({"--val_fraction", "nan"})), "--val_fraction");
  expect_refused(run(with({"--prefix", "x_val_y"})), "_val_");
  expect_refused(run(with({"--threads", "100000"})), "--threads");
  expect_refused(run({kTokenize, "--tokenizer", tok, "--out", dir.file("a_file"), corpus}), "is a file, not a folder");

  // An --out that cannot be made is refused before any work, naming the part in the way (not a
  // staging folder of ours): under a file, or a symbolic link to nothing.
  ASSERT_EQ(::symlink(dir.file("nowhere").c_str(), dir.file("dangling").c_str()), 0);
  for (const auto& tool :
       {std::vector<std::string>{kTokTrain}, std::vector<std::string>{kTokenize, "--tokenizer", tok}}) {
    auto with_out = [&](const std::string& out) {
      auto argv = tool;
      argv.insert(argv.end(), {"--out", out, corpus});
      return run(argv);
    };
    expect_refused(with_out(dir.file("a_file/sub")), "--out " + dir.file("a_file/sub") + " cannot be created: " +
                                                         dir.file("a_file") + " is a file, not a folder");
    expect_refused(with_out(dir.file("dangling")), "is a symbolic link to something that does not exist");
    expect_refused(with_out(dir.file("dangling/sub")), "cannot be created: " + dir.file("dangling") +
                                                           " is a symbolic link to something that does not exist");
  }
  // A link to an empty folder is written through: the shards land in the folder, the link stays.
  make_dirs(dir.file("real_shards"));
  ASSERT_EQ(::symlink(dir.file("real_shards").c_str(), dir.file("shard_link").c_str()), 0);
  const auto through = run({kTokenize, "--tokenizer", tok, "--out", dir.file("shard_link"), corpus});
  ASSERT_TRUE(through.ok()) << through.describe();
  EXPECT_FALSE(list_dir(dir.file("real_shards")).empty());
  EXPECT_TRUE(path_exists(dir.file("shard_link/data_val_000000.bin")));

  // An empty --text_column, or "--text_column=" (which would take the next argument, the corpus,
  // as its value), is refused rather than read as the built-in corpus.
  expect_refused(run({kTokTrain, "--out", dir.file("t2"), "--text_column=", corpus}), "--text_column= has no value");
  expect_refused(run({kTokTrain, "--out", dir.file("t2"), "--text_column", "", corpus}), "--text_column is empty");
  expect_refused(run(with({"--text_column="})), "--text_column= has no value");
  EXPECT_FALSE(path_exists(dir.file("t2")));

  // Input without text (blank lines only): refused, nothing written — no tokenizer without merges,
  // no shards of nothing but <|bos|>.
  write_text(dir.file("blank.txt"), "\n\n   \n\n");
  expect_refused(run({kTokTrain, "--out", dir.file("blank_tok"), dir.file("blank.txt")}), "hold no text to train on");
  EXPECT_FALSE(path_exists(dir.file("blank_tok/tokenizer.json")));
  expect_refused(run({kTokenize, "--tokenizer", tok, "--out", dir.file("blank_shards"), dir.file("blank.txt")}),
                 "hold no text to encode");
  EXPECT_FALSE(path_exists(dir.file("blank_shards")));
  for (const auto& name : list_dir(dir.path())) EXPECT_EQ(name.find(".partial-"), std::string::npos) << name;
}

TEST(RealData, VocabSmallerThanTheTokenizerIsRefused) {
  TempDir dir;
  write_corpus(dir.file("corpus.txt"));
  ASSERT_TRUE(run({kTokTrain, "--out", dir.file("tok"), "--vocab_size", "320", dir.file("corpus.txt")}).ok());
  ASSERT_TRUE(run({kTokenize, "--tokenizer", dir.file("tok"), "--out", dir.file("shards"), "--shard_size", "4000",
                   dir.file("corpus.txt")})
                  .ok());
  const auto result = run_base_train({"--data=" + dir.file("shards"), "--tokenizer=" + dir.file("tok"),
                                      "--vocab_size=300", "--out_dir=" + dir.file("out")});
  EXPECT_EQ(result.exit_code, 2) << result.describe();
  EXPECT_NE(result.output.find("vocab_size"), std::string::npos) << result.output;
}

}  // namespace
}  // namespace hgpt::testing
