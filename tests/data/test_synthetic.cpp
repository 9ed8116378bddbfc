// test_synthetic.cpp — the built-in corpus: determinism, shape of the documents, and answers that
// an independent parse of the text (corpus_parse.h) confirms, position by position.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "hgpt/data/synthetic.h"
#include "tests/data/corpus_parse.h"

namespace hgpt::data {
namespace {

using corpus::parse_document;
using corpus::ParsedDoc;

std::string body_text(const Document& doc) {  // the text after the leading BOS
  return decode_bytes(std::vector<uint32_t>(doc.tokens.begin() + 1, doc.tokens.end()));
}

// The generator's per-token marks must be exactly the parsed answer spans (token = char + 1).
void expect_marks_match(const Document& doc, const ParsedDoc& parsed, uint64_t seed) {
  SCOPED_TRACE("seed " + std::to_string(seed) + ": " + body_text(doc));
  ASSERT_EQ(doc.task.size(), doc.tokens.size());
  ASSERT_EQ(doc.span.size(), doc.tokens.size());
  std::vector<int> want_span(doc.tokens.size(), -1);
  for (size_t s = 0; s < parsed.spans.size(); ++s)
    for (int pos : parsed.spans[s]) want_span[pos + 1] = static_cast<int>(s);
  for (size_t k = 0; k < doc.tokens.size(); ++k) {
    EXPECT_EQ(doc.span[k], want_span[k]) << "token " << k;
    EXPECT_EQ(doc.task[k], want_span[k] >= 0 ? static_cast<int8_t>(parsed.task) : 0) << "token " << k;
  }
}

TEST(Synthetic, DeterministicInSeedAndDiffersAcrossSeeds) {
  std::set<std::string> texts;
  for (uint64_t seed = 0; seed < 300; ++seed) {
    const Document a = generate_document(seed), b = generate_document(seed);
    EXPECT_EQ(a.tokens, b.tokens);
    EXPECT_EQ(a.task, b.task);
    EXPECT_EQ(a.span, b.span);
    texts.insert(decode_bytes(a.tokens));
  }
  EXPECT_GE(texts.size(), 295u);  // distinct seeds give (almost always) distinct documents
  // A pinned document: the bytes must not change silently between builds or platforms, since
  // checkpoints resume the stream by row index.
  EXPECT_EQ(decode_bytes(generate_document(12345, Task::AssociativeRecall).tokens), "<|bos|>recall: s=8 y=2 ; s:8\n");
  EXPECT_EQ(
      decode_bytes(generate_document(12345).tokens),
      "<|bos|>the old dog moves one cold girl. my book sings. this red dog sleeps. this dog likes a happy boy.\n");
}

TEST(Synthetic, DocumentsAreShortBytesAfterOneBos) {
  for (uint64_t seed = 0; seed < 2000; ++seed) {
    const Document doc = generate_document(seed);
    ASSERT_GE(doc.tokens.size(), 20u) << seed;
    ASSERT_LE(doc.tokens.size(), 200u) << seed;
    EXPECT_EQ(doc.tokens.front(), kByteBos);
    EXPECT_EQ(doc.tokens.back(), static_cast<uint32_t>('\n'));
    for (size_t k = 1; k < doc.tokens.size(); ++k) ASSERT_LT(doc.tokens[k], 256u) << seed;
  }
}

TEST(Synthetic, KindsAreMixedAsDocumented) {
  std::map<Task, int> counts;
  const int n = 4000;
  for (uint64_t seed = 0; seed < static_cast<uint64_t>(n); ++seed)
    counts[parse_document(body_text(generate_document(seed))).task]++;
  EXPECT_NEAR(counts[Task::None], 0.2 * n, 0.04 * n);
  EXPECT_NEAR(counts[Task::SelectiveCopy], 0.2 * n, 0.04 * n);
  EXPECT_NEAR(counts[Task::Induction], 0.2 * n, 0.04 * n);
  EXPECT_NEAR(counts[Task::AssociativeRecall], 0.4 * n, 0.04 * n);
}

TEST(Synthetic, AnswersAreRightByConstruction) {
  // Every kind, many seeds: the parse recomputes each answer from the text (letters of the copy
  // field, the token after the trigger's first occurrence, the key's value) and checks the marks.
  int spans_seen = 0;
  for (Task kind : {Task::None, Task::SelectiveCopy, Task::Induction, Task::AssociativeRecall}) {
    for (uint64_t seed = 0; seed < 500; ++seed) {
      const Document doc = generate_document(seed, kind);
      const ParsedDoc parsed = parse_document(body_text(doc));
      ASSERT_EQ(parsed.error, "") << "seed " << seed << ": " << body_text(doc);
      ASSERT_EQ(parsed.task, kind) << body_text(doc);
      if (kind != Task::None) ASSERT_FALSE(parsed.spans.empty());
      expect_marks_match(doc, parsed, seed);
      spans_seen += static_cast<int>(parsed.spans.size());
    }
  }
  EXPECT_GT(spans_seen, 1500);
}

TEST(Synthetic, MixedDocumentsParseToo) {
  for (uint64_t seed = 1000; seed < 1500; ++seed) {
    const Document doc = generate_document(seed);
    const ParsedDoc parsed = parse_document(body_text(doc));
    ASSERT_EQ(parsed.error, "") << body_text(doc);
    expect_marks_match(doc, parsed, seed);
  }
}

TEST(Synthetic, TaskNames) {
  EXPECT_STREQ(task_name(Task::SelectiveCopy), "selective_copy");
  EXPECT_STREQ(task_name(Task::Induction), "induction");
  EXPECT_STREQ(task_name(Task::AssociativeRecall), "assoc_recall");
  EXPECT_STREQ(task_name(Task::None), "none");
}

TEST(Synthetic, EncodeDecodeRoundTrip) {
  const std::vector<uint32_t> tokens = {kByteBos, 'h', 'i', 0, 255, '\n', kByteBos, 'x'};
  const std::string text = decode_bytes(tokens);
  EXPECT_EQ(text, std::string("<|bos|>hi") + std::string(1, '\0') + "\xff\n<|bos|>x");
  EXPECT_EQ(encode_bytes(text), tokens);
  EXPECT_EQ(encode_bytes("ab"), (std::vector<uint32_t>{'a', 'b'}));
  EXPECT_EQ(encode_bytes("<|bos"), (std::vector<uint32_t>{'<', '|', 'b', 'o', 's'}));  // no partial match
  const Document doc = generate_document(7);
  EXPECT_EQ(encode_bytes(decode_bytes(doc.tokens)), doc.tokens);
}

TEST(Synthetic, SamplePromptsStopBeforeAnswers) {
  const std::vector<std::string> prompts = sample_prompts();
  ASSERT_EQ(prompts.size(), 4u);
  EXPECT_EQ(prompts, sample_prompts());
  for (const std::string& p : prompts) {
    ASSERT_TRUE(corpus::starts_with(p, "<|bos|>")) << p;
    EXPECT_EQ(encode_bytes(p).front(), kByteBos);
  }
  const std::string bos = "<|bos|>";
  // Induction: ends with a trigger whose earlier occurrence is followed by the expected answer.
  const std::string ind = prompts[1].substr(bos.size());
  ASSERT_TRUE(corpus::starts_with(ind, "induct: ")) << ind;
  const char trig = ind.back();
  EXPECT_NE(std::string("#@$%&*").find(trig), std::string::npos) << ind;
  const size_t first = ind.find(trig);
  EXPECT_LT(first + 1, ind.find(" |"));
  // Recall: ends with "<key>:" and the key appears among the pairs.
  const std::string rec = prompts[2].substr(bos.size());
  ASSERT_TRUE(corpus::starts_with(rec, "recall: ")) << rec;
  ASSERT_EQ(rec.back(), ':');
  EXPECT_NE(rec.find(rec.substr(rec.size() - 3, 2) + "="), std::string::npos) << rec;
  // Copy: ends with the marker.
  const std::string cp = prompts[3].substr(bos.size());
  ASSERT_TRUE(corpus::starts_with(cp, "copy: ")) << cp;
  EXPECT_EQ(cp.substr(cp.size() - 3), " > ");
}

}  // namespace
}  // namespace hgpt::data
