// test_tokenize_tool.cpp — end to end: the built `tokenize` binary turns JSONL / text files into
// shards that TokenShard reads back as <|bos|> + encode(doc) for every document, in order; the
// validation split, and bad input (exit 2 naming file and line, or --skip-bad). Also the document
// reader's file conventions and its refusal of files that are not text.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>

#include "hgpt/data/shards.h"
#include "hgpt/errors.h"
#include "hgpt/tokenizer/documents.h"
#include "hgpt/tokenizer/parquet_text.h"
#include "hgpt/tokenizer/pseudo_text.h"
#include "hgpt/tokenizer/tokenizer.h"
#include "tests/support/files.h"
#include "tests/tokenizer/tool_run.h"

using namespace hgpt::data;
using namespace hgpt::tokenizer;
using hgpt::testing::basename_of;
using hgpt::testing::file_size;
using hgpt::testing::read_text;
using hgpt::testing::run_tool;
using hgpt::testing::TempDir;
using hgpt::testing::ToolRun;
using hgpt::testing::write_text;

namespace {

// Runs build/tokenize with the given arguments.
ToolRun run_tokenize(const TempDir& dir, const std::string& args) { return run_tool(dir, "tokenize", args); }

std::string json_line(const std::string& text) {
  std::string out = "{\"text\": \"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out + "\"}\n";
}

// All tokens of the shards of one split, in shard-number order.
std::vector<uint32_t> read_split(const std::string& dir, bool validation) {
  std::vector<uint32_t> out;
  for (const auto& path : list_shards(dir, validation)) {
    TokenShard s(path);
    for (int64_t i = 0; i < s.size(); ++i) out.push_back(s[i]);
  }
  return out;
}

std::vector<uint32_t> expected_stream(const Tokenizer& tok, const std::vector<std::string>& docs) {
  std::vector<uint32_t> out;
  for (const auto& d : docs) {
    out.push_back(tok.bos_id());
    auto ids = tok.encode(d);
    out.insert(out.end(), ids.begin(), ids.end());
  }
  return out;
}

struct Corpus {
  TempDir dir;
  Tokenizer tok;
  std::vector<std::string> docs;  // in the order the tool must see them
  std::string files;              // the tool's file arguments
  Corpus()
      : tok([] {
          TrainOptions opt;
          opt.vocab_size = 400;
          return Tokenizer::train(pseudo_text(50000, 21), opt);
        }()) {
    tok.save(dir.file("tok"));
    std::string jsonl;
    for (const auto& d : pseudo_text(6000, 8)) {
      docs.push_back(d);
      jsonl += json_line(d);
    }
    jsonl += "\n";  // blank lines in JSONL are skipped
    docs.push_back("ünïcode 日本語 😀 and <|bos|> as text");
    jsonl += json_line(docs.back());
    write_text(dir.file("a.jsonl"), jsonl);
    write_text(dir.file("b.txt"), "First paragraph,\nstill first.\n\n\nSecond   paragraph.\n");
    docs.push_back("First paragraph,\nstill first.");
    docs.push_back("Second   paragraph.");
    files = dir.file("a.jsonl") + " " + dir.file("b.txt");
  }
};

}  // namespace

TEST(TokenizeTool, ShardsGiveBackDocumentsInOrderWithBos) {
  Corpus c;
  const std::string out = c.dir.file("shards");
  ToolRun r = run_tokenize(c.dir, "--tokenizer " + c.dir.file("tok") + " --out " + out +
                                      " --shard_size 100 --threads 2 --prefix demo " + c.files);
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  auto val_paths = list_shards(out, true);
  ASSERT_EQ(val_paths.size(), 1u);
  EXPECT_EQ(basename_of(val_paths[0]), "demo_val_000000.bin");
  auto train_paths = list_shards(out, false);
  EXPECT_EQ(basename_of(train_paths[0]), "demo_train_000001.bin");
  for (size_t i = 0; i + 1 < train_paths.size(); ++i) EXPECT_EQ(TokenShard(train_paths[i]).size(), 100);
  EXPECT_EQ(read_shard_header(val_paths[0]).token_bytes, 2);  // vocab 400 fits uint16
  std::vector<uint32_t> all = read_split(out, true);
  ASSERT_EQ(all.size(), 100u);
  auto train = read_split(out, false);
  all.insert(all.end(), train.begin(), train.end());
  EXPECT_EQ(all, expected_stream(c.tok, c.docs));
  // And the decoded stream is the documents joined by the BOS name.
  std::string joined;
  for (const auto& d : c.docs) joined += "<|bos|>" + d;
  EXPECT_EQ(c.tok.decode(all), joined);
}

TEST(TokenizeTool, ValFractionTakesEvenlySpacedDocuments) {
  Corpus c;
  const std::string out = c.dir.file("shards");
  ToolRun r = run_tokenize(
      c.dir, "--tokenizer " + c.dir.file("tok") + " --out " + out + " --shard_size 64 --val_fraction 0.25 " + c.files);
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  std::vector<std::string> val_docs, train_docs;
  for (size_t i = 0; i < c.docs.size(); ++i) (i % 4 == 3 ? val_docs : train_docs).push_back(c.docs[i]);
  EXPECT_EQ(read_split(out, true), expected_stream(c.tok, val_docs));
  EXPECT_EQ(read_split(out, false), expected_stream(c.tok, train_docs));
}

TEST(TokenizeTool, BadInputExitsTwoNamingFileAndLine) {
  Corpus c;
  write_text(c.dir.file("bad.jsonl"),
             "{\"text\": \"one\"}\n{\"text\": \"two\"}\n{\"text\": oops}\n{\"txt\": \"x\"}\n{\"text\": \"five\"}\n");
  const std::string base = "--tokenizer " + c.dir.file("tok") + " --out " + c.dir.file("s") + " --shard_size 1000 ";
  ToolRun r = run_tokenize(c.dir, base + c.dir.file("bad.jsonl"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.stderr_text.find("error: "), std::string::npos) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("bad.jsonl:3:"), std::string::npos) << r.stderr_text;

  r = run_tokenize(c.dir, base + c.dir.file("missing.txt"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.stderr_text.find("missing.txt"), std::string::npos) << r.stderr_text;

  r = run_tokenize(c.dir, base + "--skip-bad " + c.dir.file("bad.jsonl") + " " + c.dir.file("missing.txt"));
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("skipped 1 unreadable or non-text files and 2 bad lines"), std::string::npos)
      << r.stderr_text;
  EXPECT_EQ(read_split(c.dir.file("s"), true), expected_stream(c.tok, {"one", "two", "five"}));

  r = run_tokenize(c.dir, "--tokenizer " + c.dir.file("no_tok") + " --out " + c.dir.file("s") + " " + c.files);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.stderr_text.find("tokenizer folder '" + c.dir.file("no_tok") + "' does not exist"), std::string::npos)
      << r.stderr_text;
  r = run_tokenize(c.dir, base + "--val_fraction 1.5 " + c.files);
  EXPECT_EQ(r.exit_code, 2);
}

TEST(DocumentReader, FileConventions) {
  TempDir dir;
  write_text(dir.file("t.txt"), "\n\nalpha\nbeta\n \t\ngamma\r\n\r\n\r\ndelta");
  write_text(dir.file("j.jsonl"), "{\"text\": \"x\\ny\", \"id\": 3}\n\n  \n{\"text\": \"\"}\n");
  DocumentReader reader({dir.file("t.txt"), dir.file("j.jsonl")});
  std::vector<std::string> docs;
  std::string d;
  while (reader.next(d)) docs.push_back(d);
  EXPECT_EQ(docs, (std::vector<std::string>{"alpha\nbeta", "gamma\r", "delta", "x\ny", ""}));
  EXPECT_EQ(reader.total_bytes(), file_size(dir.file("t.txt")) + file_size(dir.file("j.jsonl")));

  DocumentReader whole({dir.file("t.txt")}, DocumentReaderOptions{/*whole_file=*/true, false});
  ASSERT_TRUE(whole.next(d));
  EXPECT_EQ(d, read_text(dir.file("t.txt")));
  EXPECT_FALSE(whole.next(d));

  write_text(dir.file("bad.jsonl"), "{\"text\": \"ok\"}\n[1, 2]\n");
  DocumentReader bad({dir.file("bad.jsonl")});
  ASSERT_TRUE(bad.next(d));
  try {
    bad.next(d);
    FAIL();
  } catch (const hgpt::UserError& e) {
    EXPECT_NE(std::string(e.what()).find("bad.jsonl:2:"), std::string::npos) << e.what();
  }
}

// A file that is not text (a known binary magic, NUL bytes, mostly invalid UTF-8) is refused
// naming the file, why and --skip_bad, never tokenized as bytes; real UTF-8 text passes, also when
// the 64 KiB head ends inside a multi-byte character.
TEST(DocumentReader, FilesThatAreNotTextAreRefused) {
  TempDir dir;
  const std::vector<std::pair<std::string, std::string>> binaries = {
      {"x.zip", std::string("PK\x03\x04\x14\x00", 6) + "text inside"},
      {"x.txt.gz", std::string("\x1f\x8b\x08\x00", 4) + "rest"},
      {"nul.txt", std::string("hello\0world", 11)},
      {"latin1.txt", std::string(200, '\xe9') + " caf\xe9"},
  };
  for (const auto& [name, bytes] : binaries) {
    write_text(dir.file(name), bytes);
    DocumentReader reader({dir.file(name)});
    std::string d;
    try {
      reader.next(d);
      ADD_FAILURE() << name << " was read as text";
    } catch (const hgpt::UserError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(dir.file(name) + ": cannot read: not text ("), std::string::npos) << msg;
      EXPECT_NE(msg.find("--skip_bad"), std::string::npos) << msg;
    }
  }
  std::vector<std::string> files;
  for (const auto& b : binaries) files.push_back(dir.file(b.first));
  std::string head_cut(64 * 1024 - 1, 'a');
  head_cut += "\xe6\x97\xa5 and more";  // 日 straddles the 64 KiB head
  write_text(dir.file("cut.txt"), head_cut);
  write_text(dir.file("utf8.txt"), "ünïcode 日本語 😀\n");
  files.push_back(dir.file("cut.txt"));
  files.push_back(dir.file("utf8.txt"));
  DocumentReader skipping(files, DocumentReaderOptions{false, /*skip_bad=*/true});
  std::vector<std::string> docs;
  std::string d;
  while (skipping.next(d)) docs.push_back(d);
  EXPECT_EQ(skipping.bad_files(), static_cast<int64_t>(binaries.size()));
  EXPECT_EQ(docs, (std::vector<std::string>{head_cut, "ünïcode 日本語 😀"}));
}

// A file that starts with parquet's magic is read as parquet whatever its name (never tokenized as
// bytes): damaged, it is refused as parquet (tests/tokenizer/test_parquet.cpp reads good ones).
TEST(TokenizeTool, AFileWithParquetMagicIsReadAsParquet) {
  Corpus c;
  write_text(c.dir.file("x.dat"), std::string("PAR1\x15\x04", 6) + std::string(100, '\x01'));
  const ToolRun r =
      run_tokenize(c.dir, "--tokenizer " + c.dir.file("tok") + " --out " + c.dir.file("s") + " " + c.dir.file("x.dat"));
  EXPECT_EQ(r.exit_code, 2) << r.stderr_text;
  const std::string why = parquet_supported() ? ": cannot read as parquet: " : ": this build reads no parquet";
  EXPECT_NE(r.stderr_text.find("error: " + c.dir.file("x.dat") + why), std::string::npos) << r.stderr_text;
}

// --out into a folder that already holds files is refused (training reads every *.bin there, so
// old shards would silently mix with the new ones); a failed run leaves --out as it was.
TEST(TokenizeTool, RefusesANonEmptyOutputAndNeverLeavesPartialShards) {
  Corpus c;
  const std::string out = c.dir.file("shards");
  const std::string base = "--tokenizer " + c.dir.file("tok") + " --out " + out + " --shard_size 100 ";
  ToolRun r = run_tokenize(c.dir, base + c.files);
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  const auto first_train = list_shards(out, false);

  r = run_tokenize(c.dir, base + c.dir.file("b.txt"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.stderr_text.find("error: "), std::string::npos) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find(out), std::string::npos) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("not empty"), std::string::npos) << r.stderr_text;
  EXPECT_EQ(list_shards(out, false), first_train);  // untouched

  // A run that fails halfway (a bad line after enough text for several shards) writes nothing.
  std::string jsonl;
  for (const auto& d : c.docs) jsonl += json_line(d);
  write_text(c.dir.file("late_error.jsonl"), jsonl + "{\"text\": oops}\n");
  const std::string fresh = c.dir.file("fresh");
  r = run_tokenize(c.dir, "--tokenizer " + c.dir.file("tok") + " --out " + fresh + " --shard_size 100 " +
                              c.dir.file("late_error.jsonl"));
  EXPECT_EQ(r.exit_code, 2) << r.stderr_text;
  EXPECT_LT(file_size(fresh), 0) << fresh << " should not exist after a failed run";
  // An existing empty folder is fine.
  ASSERT_EQ(::mkdir(fresh.c_str(), 0755), 0);
  r = run_tokenize(c.dir, "--tokenizer " + c.dir.file("tok") + " --out " + fresh + " --shard_size 100 " + c.files);
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_EQ(list_shards(fresh, false).size(), first_train.size());
}
