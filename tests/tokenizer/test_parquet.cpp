// test_parquet.cpp — parquet input of tok_train and tokenize, through Arrow, against files that
// pyarrow writes (tests/tokenizer/write_parquet_cases.py): the tokens of a parquet file equal those
// of the same documents as JSONL (several row groups, nulls skipped and counted, a column before the
// text, --text_column), a file without rows gives no documents, and every bad file (0 bytes, cut,
// a damaged page, a column that is not strings, a missing column) is one `error:` line, exit 2,
// with nothing written.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "hgpt/files.h"
#include "hgpt/tokenizer/documents.h"
#include "hgpt/tokenizer/parquet_text.h"
#include "tests/support/files.h"
#include "tests/tokenizer/tool_run.h"

using hgpt::testing::file_size;
using hgpt::testing::read_text;
using hgpt::testing::run_tool;
using hgpt::testing::TempDir;
using hgpt::testing::ToolRun;
using hgpt::testing::write_text;

namespace {

// The lines of `text` that start with `prefix`.
int lines_starting(const std::string& text, const std::string& prefix) {
  int n = 0;
  for (size_t at = 0; at < text.size();) {
    const size_t end = std::min(text.find('\n', at), text.size());
    n += text.compare(at, prefix.size(), prefix) == 0;
    at = end + 1;
  }
  return n;
}

// The parquet files and their JSONL twins, written by pyarrow into a fresh folder.
struct ParquetCases {
  TempDir dir;
  nlohmann::json counts;  // rows, nulls, documents, row_groups of docs.parquet
  std::string skip_reason;

  ParquetCases() {
    const std::string python = std::string(HGPT_SOURCE_DIR) + "/.venv/bin/python";
    if (!hgpt::tokenizer::parquet_supported()) {
      skip_reason = "this build reads no parquet (Arrow was not found when it was configured)";
      return;
    }
    if (access(python.c_str(), X_OK) != 0) {
      skip_reason = python + " not found (scripts/setup.sh creates it, with pyarrow)";
      return;
    }
    const std::string script = std::string(HGPT_SOURCE_DIR) + "/tests/tokenizer/write_parquet_cases.py";
    const std::string out = dir.file("counts.json");
    const int status = std::system((python + " " + script + " " + dir.path() + " > " + out).c_str());
    if (status != 0) {
      ADD_FAILURE() << script << " failed (status " << status << ")";
      return;
    }
    counts = nlohmann::json::parse(read_text(out));
  }
  std::string file(const std::string& name) const { return dir.file(name); }
  // Trains a tokenizer on docs.jsonl into tok/ once.
  std::string tokenizer() {
    const std::string tok = dir.file("tok");
    if (file_size(tok + "/tokenizer.json") < 0) {
      const ToolRun r = run_tool(dir, "tok_train", "--out " + tok + " --vocab_size 320 " + file("docs.jsonl"));
      EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
    }
    return tok;
  }
};

#define SKIP_WITHOUT_PARQUET(cases) \
  if (!(cases).skip_reason.empty()) GTEST_SKIP() << (cases).skip_reason

}  // namespace

// Several row groups, a column before the text, nulls and an empty string: the reader returns the
// non-null texts in order and counts the nulls.
TEST(ParquetInput, ReaderGivesTheTextsInOrderAndCountsNulls) {
  ParquetCases c;
  SKIP_WITHOUT_PARQUET(c);
  ASSERT_GT(c.counts["row_groups"].get<int>(), 3);
  // A dictionary-encoded column holds the same texts as indices into a dictionary of strings.
  for (const std::string name : {"docs.parquet", "dict.parquet"}) {
    hgpt::tokenizer::DocumentReader parquet({c.file(name)}), jsonl({c.file("docs.jsonl")});
    std::string a, b;
    int64_t docs = 0;
    while (jsonl.next(b)) {
      ASSERT_TRUE(parquet.next(a)) << name << " ended after " << docs << " documents";
      EXPECT_EQ(a, b) << name << ": document " << docs;
      ++docs;
    }
    EXPECT_FALSE(parquet.next(a));
    EXPECT_EQ(docs, c.counts["documents"].get<int64_t>());
    EXPECT_EQ(parquet.null_rows(), c.counts["nulls"].get<int64_t>()) << name;
    EXPECT_EQ(parquet.bytes_read(), parquet.total_bytes());  // progress reaches 100%
  }
}

// tok_train on the parquet file writes the same tokenizer as on the JSONL; tokenize writes the
// same shards, byte for byte, and says how many null rows it skipped.
TEST(ParquetInput, ToolsGiveTheTokensOfTheSameTextsAsJsonl) {
  ParquetCases c;
  SKIP_WITHOUT_PARQUET(c);
  const std::string tok = c.tokenizer();
  ToolRun r = run_tool(c.dir, "tok_train", "--out " + c.file("tok_pq") + " --vocab_size 320 " + c.file("docs.parquet"));
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_EQ(read_text(c.file("tok_pq/tokenizer.tiktoken")), read_text(tok + "/tokenizer.tiktoken"));
  EXPECT_EQ(read_text(c.file("tok_pq/tokenizer.json")), read_text(tok + "/tokenizer.json"));
  for (const std::string& name : {"docs", "body"}) {
    const std::string column = name == "body" ? " --text_column body" : "";
    const std::string args = "--tokenizer " + tok + " --shard_size 500" + column;
    r = run_tool(c.dir, "tokenize", args + " --out " + c.file(name + "_pq") + " " + c.file(name + ".parquet"));
    ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
    EXPECT_NE(r.stderr_text.find("skipped 3 null rows (no text)"), std::string::npos) << r.stderr_text;
    r = run_tool(c.dir, "tokenize", args + " --out " + c.file(name + "_js") + " " + c.file(name + ".jsonl"));
    ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
    const auto shards = hgpt::list_dir(c.file(name + "_js"));
    ASSERT_GT(shards.size(), 2u);
    EXPECT_EQ(hgpt::list_dir(c.file(name + "_pq")), shards);
    for (const auto& s : shards)
      EXPECT_EQ(read_text(c.file(name + "_pq/" + s)), read_text(c.file(name + "_js/" + s))) << name << ": " << s;
  }
}

// A valid file with no rows holds no documents: beside another file it adds nothing.
TEST(ParquetInput, AFileWithoutRowsAddsNothing) {
  ParquetCases c;
  SKIP_WITHOUT_PARQUET(c);
  const std::string tok = c.tokenizer();
  const std::string args = "--tokenizer " + tok + " --shard_size 500 --out ";
  ToolRun r =
      run_tool(c.dir, "tokenize", args + c.file("a") + " " + c.file("empty.parquet") + " " + c.file("docs.jsonl"));
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  r = run_tool(c.dir, "tokenize", args + c.file("b") + " " + c.file("docs.jsonl"));
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  for (const auto& s : hgpt::list_dir(c.file("b"))) EXPECT_EQ(read_text(c.file("a/" + s)), read_text(c.file("b/" + s)));
}

// A file whose every text is null holds no text: both tools refuse it (nothing written), naming
// the null rows, rather than write a tokenizer without merges or shards of <|bos|> alone.
TEST(ParquetInput, OnlyNullTextsAreRefused) {
  ParquetCases c;
  SKIP_WITHOUT_PARQUET(c);
  const std::string tok = c.tokenizer();
  for (const std::string tool : {"tokenize", "tok_train"}) {
    const std::string out = c.file(tool + "_nulls.out");
    const std::string args = (tool == "tokenize" ? "--tokenizer " + tok + " " : std::string()) + "--out " + out + " " +
                             c.file("nulls.parquet");
    const ToolRun r = run_tool(c.dir, tool, args);
    EXPECT_EQ(r.exit_code, 2) << tool << ": " << r.stderr_text;
    EXPECT_NE(r.stderr_text.find("error: the files hold no text to "), std::string::npos)
        << tool << ": " << r.stderr_text;
    EXPECT_NE(r.stderr_text.find("5 null rows (no text)"), std::string::npos) << tool << ": " << r.stderr_text;
    EXPECT_LT(file_size(out + "/tokenizer.json"), 0) << tool;
    if (tool == "tokenize") EXPECT_LT(file_size(out), 0) << "tokenize created " << out;
  }
}

// Each bad file: one `error:` line that names it and the problem, exit 2, no output folder; with
// --skip_bad the file is skipped from its damage on, counted, and the good file's documents are all there.
TEST(ParquetInput, BadFilesAreOneErrorLineAndExitTwo) {
  ParquetCases c;
  SKIP_WITHOUT_PARQUET(c);
  const std::string tok = c.tokenizer();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"zero.parquet", "cannot read as parquet"},
      {"zero.parquet", "pass --skip_bad"},
      {"truncated.parquet", "cannot read as parquet"},
      {"truncated.parquet", "fetch the file again, or pass --skip_bad"},
      {"twice.parquet", "2 columns are named 'text'"},
      {"damaged.parquet", "row group 1 of"},
      {"ints.parquet", "column 'text' holds int64, not strings"},
      {"body.parquet", "no column 'text' (its columns: body)"},
  };
  for (const auto& [name, why] : cases) {
    for (const std::string tool : {"tokenize", "tok_train"}) {
      const std::string out = c.file(tool + "_" + name + ".out");
      const std::string args = tool == "tokenize" ? "--tokenizer " + tok + " --out " + out + " " + c.file(name)
                                                  : "--out " + out + " " + c.file(name);
      const ToolRun r = run_tool(c.dir, tool, args);
      EXPECT_EQ(r.exit_code, 2) << tool << " " << name << ": " << r.stderr_text;
      EXPECT_EQ(lines_starting(r.stderr_text, "error: " + c.file(name) + ": "), 1) << tool << ": " << r.stderr_text;
      EXPECT_NE(r.stderr_text.find(why), std::string::npos) << tool << ": " << r.stderr_text;
      EXPECT_EQ(r.stderr_text.find("fatal"), std::string::npos) << r.stderr_text;
      EXPECT_LT(file_size(out + "/tokenizer.json"), 0) << tool << " wrote a tokenizer from " << name;
      if (tool == "tokenize") EXPECT_LT(file_size(out), 0) << "tokenize created " << out;
    }
  }
  const ToolRun r =
      run_tool(c.dir, "tokenize",
               "--tokenizer " + tok + " --skip_bad --out " + c.file("skipped") + " " + c.file("damaged.parquet") + " " +
                   c.file("zero.parquet") + " " + c.file("docs.parquet"));
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("skipped 2 unreadable or non-text files"), std::string::npos) << r.stderr_text;
  // The damaged file's rows before its damaged row group were read (and kept), the rest skipped.
  const int docs = c.counts["documents"].get<int>() + c.counts["first_row_group_documents"].get<int>();
  EXPECT_NE(r.stderr_text.find(": " + std::to_string(docs) + " docs → "), std::string::npos) << r.stderr_text;
}

// Without Arrow the tools keep their parquet flags and say how to get parquet support.
TEST(ParquetInput, WithoutArrowTheToolsSayHowToGetIt) {
  if (hgpt::tokenizer::parquet_supported())
    GTEST_SKIP() << "this build reads parquet; the message of a build without Arrow is tested in such builds";
  TempDir dir;
  write_text(dir.file("x.parquet"), std::string("PAR1\x15\x04", 6) + std::string(100, '\x01'));
  const ToolRun r = run_tool(dir, "tok_train", "--out " + dir.file("t") + " " + dir.file("x.parquet"));
  EXPECT_EQ(r.exit_code, 2) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("this build reads no parquet"), std::string::npos) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("scripts/setup.sh"), std::string::npos) << r.stderr_text;
}
