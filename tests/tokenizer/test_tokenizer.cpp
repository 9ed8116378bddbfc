// test_tokenizer.cpp — the BPE tokenizer: split pattern pieces (hand-checked), encode/decode round
// trips (incl. invalid UTF-8), encoding against a naive reference BPE, training's first merges on
// hand-checked corpora, determinism, save/load, malformed files, bits per byte.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>

#include "hgpt/errors.h"
#include "hgpt/tokenizer/bits_per_byte.h"
#include "hgpt/tokenizer/pseudo_text.h"
#include "hgpt/tokenizer/tokenizer.h"
#include "hgpt/tokenizer/utf8.h"
#include "tests/support/files.h"

using namespace hgpt::tokenizer;
using hgpt::testing::read_text;
using hgpt::testing::TempDir;
using hgpt::testing::write_text;

namespace {

// One small tokenizer trained on the synthetic corpus, shared by the tests (training is the slow part).
const Tokenizer& trained() {
  static const Tokenizer tok = [] {
    TrainOptions opt;
    opt.vocab_size = 1200;
    return Tokenizer::train(pseudo_text(300000, 7), opt);
  }();
  return tok;
}

// Reference BPE, written independently of the library: tiktoken's rule on byte strings — a piece
// that is itself a token is that token; otherwise repeatedly merge the adjacent pair whose
// concatenation has the lowest rank (leftmost on ties).
std::vector<uint32_t> reference_bpe(const std::map<std::string, uint32_t>& ranks, const std::string& piece) {
  if (auto it = ranks.find(piece); it != ranks.end()) return {it->second};
  std::vector<std::string> parts;
  for (char c : piece) parts.emplace_back(1, c);
  while (parts.size() > 1) {
    size_t best = 0;
    uint32_t best_rank = UINT32_MAX;
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      auto it = ranks.find(parts[i] + parts[i + 1]);
      if (it != ranks.end() && it->second < best_rank) {
        best_rank = it->second;
        best = i;
      }
    }
    if (best_rank == UINT32_MAX) break;
    parts[best] += parts[best + 1];
    parts.erase(parts.begin() + best + 1);
  }
  std::vector<uint32_t> out;
  for (const auto& p : parts) out.push_back(ranks.at(p));
  return out;
}

std::vector<uint32_t> reference_encode(const Tokenizer& tok, const std::string& text) {
  std::map<std::string, uint32_t> ranks;
  for (int64_t id = 0; id < tok.num_ranks(); ++id)
    if (!tok.token_bytes(id).empty()) ranks[tok.token_bytes(id)] = static_cast<uint32_t>(id);
  std::vector<uint32_t> out;
  for (const auto& piece : tok.split(text)) {
    auto ids = reference_bpe(ranks, piece);
    out.insert(out.end(), ids.begin(), ids.end());
  }
  return out;
}

std::vector<std::string> tricky_texts() {
  return {
      "Hello, world! This is plain ASCII text with numbers 1234567 and punctuation...",
      "日本語のテキストと中文文本，还有한국어 텍스트。",
      "emoji: 😀🚀👩‍👩‍👧‍👦 flags 🇫🇷🇯🇵 and ❤️",
      "combining: e\xCC\x81 a\xCC\x8A n\xCC\x83 Z\xCD\x91\xCD\x97\xCC\xB4",
      "mixed: Привет мир, hello κόσμε, مرحبا بالعالم, שלום 123 naïve café",
      "whitespace:   \t\t  \n\n\n   \r\n\r\n \u00a0\u2003end   ",
      "   leading and trailing   ",
      "\n",
      "",
      "invalid: \xff\xfe abc\x80"
      "def \xe4\xb8 trunc \xc0\xaf overlong \xed\xa0\x80 surrogate \xf5\x80 end\xc3",
      "\x80\x81\x82",
      std::string("nul\0byte", 8),
      std::string(1000, 'a') + " " + std::string(700, ' ') + "x" + std::string(300, '!'),
  };
}

}  // namespace

TEST(SplitPattern, HandCheckedPieces) {
  const Tokenizer& tok = trained();
  using V = std::vector<std::string>;
  EXPECT_EQ(tok.split("Hello world"), (V{"Hello", " world"}));
  EXPECT_EQ(tok.split("I'm don't we'LL they've"), (V{"I", "'m", " don", "'t", " we", "'LL", " they", "'ve"}));
  EXPECT_EQ(tok.split("12345 abc123"), (V{"12", "34", "5", " abc", "12", "3"}));
  EXPECT_EQ(tok.split("1.25e10"), (V{"1", ".", "25", "e", "10"}));
  EXPECT_EQ(tok.split("Hello!!! ...?"), (V{"Hello", "!!!", " ...?"}));
  EXPECT_EQ(tok.split("a\n\nb"), (V{"a", "\n\n", "b"}));
  EXPECT_EQ(tok.split("a   b"), (V{"a", "  ", " b"}));
  EXPECT_EQ(tok.split("x  \nend   "), (V{"x", "  \n", "end", "   "}));
  EXPECT_EQ(tok.split("(x) => {\n  return;\n}\n"), (V{"(x", ")", " =>", " {\n", " ", " return", ";\n", "}\n"}));
  EXPECT_EQ(tok.split("won't  \r\n\r\nok"), (V{"won", "'t", "  \r\n\r\n", "ok"}));
  EXPECT_EQ(tok.split("日本語のテキスト 😀🚀 naïve"), (V{"日本語のテキスト", " 😀🚀", " naïve"}));
  // Invalid UTF-8 never matches: it becomes its own piece between the matches around it.
  EXPECT_EQ(tok.split("ab\xff\xfe cd"), (V{"ab", "\xff\xfe", " cd"}));
}

TEST(Tokenizer, RoundTripTrickyText) {
  const Tokenizer& tok = trained();
  for (const auto& text : tricky_texts()) {
    auto ids = tok.encode(text);
    EXPECT_EQ(tok.decode(ids), text) << text;
    for (uint32_t id : ids) EXPECT_LT(id, tok.num_ranks());  // specials never come out of ordinary text
  }
  // Special-token names in the text are plain text.
  auto ids = tok.encode("<|bos|>");
  EXPECT_GT(ids.size(), 1u);
  EXPECT_EQ(tok.decode(ids), "<|bos|>");
}

TEST(Tokenizer, RoundTripRandomBytes) {
  const Tokenizer& tok = trained();
  std::mt19937 rng(3);
  for (int trial = 0; trial < 200; ++trial) {
    std::string s(rng() % 64, '\0');
    for (auto& c : s) c = static_cast<char>(trial % 2 ? rng() % 256 : " ae\n\xc3\xa9\xe4\xb8\x80\x80"[rng() % 11]);
    ASSERT_EQ(tok.decode(tok.encode(s)), s);
  }
}

TEST(Tokenizer, MatchesReferenceBpe) {
  const Tokenizer& tok = trained();
  std::vector<std::string> texts = tricky_texts();
  for (const auto& doc : pseudo_text(20000, 99)) texts.push_back(doc);  // unseen text of the same kind
  for (const auto& text : texts) EXPECT_EQ(tok.encode(text), reference_encode(tok, text)) << text.substr(0, 80);
  // Training text compresses: a real tokenizer uses well under one token per byte on its own domain.
  std::string sample = pseudo_text(5000, 7)[0];
  EXPECT_LT(tok.encode(sample).size() * 2, sample.size());
}

TEST(Tokenizer, EncodeBatchEqualsEncode) {
  const Tokenizer& tok = trained();
  auto docs = pseudo_text(50000, 5);
  auto batch = tok.encode_batch(docs, 3);
  ASSERT_EQ(batch.size(), docs.size());
  for (size_t i = 0; i < docs.size(); ++i) EXPECT_EQ(batch[i], tok.encode(docs[i]));
}

TEST(Tokenizer, VocabLayoutAndByteLengths) {
  const Tokenizer& tok = trained();
  EXPECT_EQ(tok.vocab_size(), 1200);
  EXPECT_EQ(tok.num_ranks(), 1200 - 9);
  EXPECT_EQ(tok.bos_id(), 1191u);
  EXPECT_EQ(tok.special_id("<|assistant_end|>"), 1191u + 4);
  for (int b = 0; b < 256; ++b) EXPECT_EQ(tok.token_bytes(b), std::string(1, static_cast<char>(b)));
  auto lengths = tok.token_byte_lengths();
  ASSERT_EQ(lengths.size(), 1200u);
  for (int64_t id = 0; id < tok.num_ranks(); ++id) EXPECT_EQ(lengths[id], (int)tok.token_bytes(id).size());
  for (const auto& [name, id] : tok.special_tokens()) EXPECT_EQ(lengths[id], 0) << name;
  EXPECT_EQ(tok.decode({tok.bos_id(), 'h', 'i'}), "<|bos|>hi");
  EXPECT_THROW(tok.decode({5000}), std::out_of_range);
  EXPECT_THROW(tok.special_id("<|nope|>"), hgpt::UserError);
}

TEST(Train, FirstMergesHandChecked) {
  // "aaabdaaabac" is one piece. Pair counts: aa 4, ab 2, ... → merge 256 = "aa". The word becomes
  // [aa a b d aa a b a c]: (aa,a) 2 and (a,b) 2 tie → the smaller pair (97,98) wins: 257 = "ab".
  // Then [aa ab d aa ab a c]: (aa,ab) 2 is the unique maximum → 258 = "aaab".
  TrainOptions opt;
  opt.vocab_size = 256 + 3 + 1;
  opt.special_tokens = {"<|bos|>"};
  Tokenizer tok = Tokenizer::train({"aaabdaaabac"}, opt);
  ASSERT_EQ(tok.num_ranks(), 259);
  EXPECT_EQ(tok.token_bytes(256), "aa");
  EXPECT_EQ(tok.token_bytes(257), "ab");
  EXPECT_EQ(tok.token_bytes(258), "aaab");
  EXPECT_EQ(tok.bos_id(), 259u);
  EXPECT_EQ(tok.encode("aaabdaaabac"), (std::vector<uint32_t>{258, 'd', 258, 'a', 'c'}));
}

TEST(Train, MergesStayInsidePieces) {
  // Pieces: "ab" + " ab" ×3 (from two documents). (a,b) 4 → "ab"; then (' ', ab) 3 → " ab".
  // "b " never forms: the regex cuts between "b" and " ".
  TrainOptions opt;
  opt.vocab_size = 256 + 2;
  opt.special_tokens = {};
  Tokenizer tok = Tokenizer::train({"ab ab ab", " ab"}, opt);
  ASSERT_EQ(tok.num_ranks(), 258);
  EXPECT_EQ(tok.token_bytes(256), "ab");
  EXPECT_EQ(tok.token_bytes(257), " ab");
  EXPECT_THROW(tok.bos_id(), hgpt::UserError);  // no specials asked for
  // Asking for more merges than the corpus has pairs stops early.
  opt.vocab_size = 256 + 50;
  EXPECT_EQ(Tokenizer::train({"ab ab ab", " ab"}, opt).num_ranks(), 258);
  opt.vocab_size = 100;
  EXPECT_THROW(Tokenizer::train({"x"}, opt), hgpt::UserError);
}

TEST(Train, DeterministicAcrossRunsAndThreads) {
  auto docs = pseudo_text(100000, 11);
  TrainOptions opt;
  opt.vocab_size = 700;
  opt.threads = 1;
  Tokenizer a = Tokenizer::train(docs, opt);
  opt.threads = 3;
  Tokenizer b = Tokenizer::train(docs, opt);
  ASSERT_EQ(a.vocab_size(), b.vocab_size());
  for (int64_t id = 0; id < a.num_ranks(); ++id) ASSERT_EQ(a.token_bytes(id), b.token_bytes(id)) << id;
  // Every merged token is the concatenation of two earlier tokens (what BPE training must produce).
  std::map<std::string, int64_t> rank_of;
  for (int64_t id = 0; id < a.num_ranks(); ++id) rank_of[a.token_bytes(id)] = id;
  for (int64_t id = 256; id < a.num_ranks(); ++id) {
    const std::string& t = a.token_bytes(id);
    bool found = false;
    for (size_t k = 1; k < t.size() && !found; ++k) {
      auto l = rank_of.find(t.substr(0, k)), r = rank_of.find(t.substr(k));
      found = l != rank_of.end() && r != rank_of.end() && l->second < id && r->second < id;
    }
    EXPECT_TRUE(found) << "token " << id;
  }
}

TEST(TokenizerFiles, SaveLoadGivesSameEncoder) {
  const Tokenizer& tok = trained();
  TempDir dir;
  tok.save(dir.path());
  const std::string ranks = read_text(dir.file("tokenizer.tiktoken"));
  EXPECT_EQ(ranks.substr(0, 5), "AA== ");                   // byte 0 in base64, rank 0
  EXPECT_NE(ranks.find("\nYQ== 97\n"), std::string::npos);  // "a"
  Tokenizer loaded = Tokenizer::load(dir.path());
  EXPECT_EQ(loaded.vocab_size(), tok.vocab_size());
  EXPECT_EQ(loaded.pattern(), tok.pattern());
  EXPECT_EQ(loaded.special_tokens(), tok.special_tokens());
  for (const auto& text : tricky_texts()) EXPECT_EQ(loaded.encode(text), tok.encode(text));
  for (const auto& doc : pseudo_text(20000, 3)) EXPECT_EQ(loaded.encode(doc), tok.encode(doc));
}

TEST(TokenizerFiles, LoadsForeignTiktokenRanks) {
  // A tiktoken file whose single bytes are NOT in byte order (as in GPT-4's cl100k), with merges
  // and a gap in the ranks, plus a non-default pattern and special token.
  TempDir dir;
  auto b64 = [](const std::string& s) {  // tiny independent base64 for the fixture
    static const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    for (size_t i = 0; i < s.size(); i += 3) {
      uint32_t v = uint8_t(s[i]) << 16;
      if (i + 1 < s.size()) v |= uint8_t(s[i + 1]) << 8;
      if (i + 2 < s.size()) v |= uint8_t(s[i + 2]);
      out += a[(v >> 18) & 63];
      out += a[(v >> 12) & 63];
      out += i + 1 < s.size() ? a[(v >> 6) & 63] : '=';
      out += i + 2 < s.size() ? a[v & 63] : '=';
    }
    return out;
  };
  std::string file;
  for (int b = 0; b < 256; ++b)
    file += b64(std::string(1, static_cast<char>(255 - b))) + " " + std::to_string(b) + "\n";
  const std::vector<std::string> merges = {"he", "ll", "llo", "hello", " w", "or", " wor", " world"};
  for (size_t i = 0; i < merges.size(); ++i) file += b64(merges[i]) + " " + std::to_string(300 + i) + "\n";
  write_text(dir.file("r.tiktoken"), file);
  Tokenizer tok = Tokenizer::from_tiktoken(dir.file("r.tiktoken"), R"(\s?\w+|\s+|[^\s\w]+)", {{"<|endoftext|>", 400}});
  EXPECT_EQ(tok.vocab_size(), 401);
  EXPECT_EQ(tok.num_ranks(), 308);
  EXPECT_EQ(tok.bos_id(), 400u);
  EXPECT_EQ(tok.encode("hello world"), (std::vector<uint32_t>{303, 307}));
  EXPECT_EQ(tok.encode("a"), (std::vector<uint32_t>{255 - 'a'}));
  for (const auto& text : tricky_texts()) {
    EXPECT_EQ(tok.decode(tok.encode(text)), text);
    EXPECT_EQ(tok.encode(text), reference_encode(tok, text));
  }
  EXPECT_EQ(tok.token_byte_lengths()[350], 0);  // an unused id in the gap
}

namespace {

// Expects load(dir) to throw a UserError whose message contains every fragment.
void expect_load_error(const std::string& dir, const std::vector<std::string>& fragments) {
  try {
    Tokenizer::load(dir);
    FAIL() << "expected a UserError";
  } catch (const hgpt::UserError& e) {
    for (const auto& f : fragments) EXPECT_NE(std::string(e.what()).find(f), std::string::npos) << e.what();
  }
}

// A small trained tokenizer in `dir`: 256 bytes, 4 merges, 9 special tokens from id 260 (vocab 269).
void save_small_tokenizer(const std::string& dir) {
  TrainOptions opt;
  opt.vocab_size = 256 + 4 + 9;
  Tokenizer::train({"hello hello world"}, opt).save(dir);
}

}  // namespace

TEST(TokenizerFiles, MalformedFilesNameFileAndLine) {
  TempDir dir;
  save_small_tokenizer(dir.path());
  const std::string good_ranks = read_text(dir.file("tokenizer.tiktoken"));
  const std::string good_json = read_text(dir.file("tokenizer.json"));
  ASSERT_NO_THROW(Tokenizer::load(dir.path()));

  auto with_line = [&](int line_no, const std::string& replacement) {  // replaces line `line_no` (1-based)
    std::string out;
    size_t pos = 0;
    for (int l = 1; pos < good_ranks.size(); ++l) {
      size_t end = good_ranks.find('\n', pos);
      out += l == line_no ? replacement : good_ranks.substr(pos, end - pos);
      out += '\n';
      pos = end + 1;
    }
    return out;
  };
  write_text(dir.file("tokenizer.tiktoken"), with_line(3, "!!notbase64 2"));
  expect_load_error(dir.path(), {"tokenizer.tiktoken:3:", "base64"});
  write_text(dir.file("tokenizer.tiktoken"), with_line(5, "BA== four"));
  expect_load_error(dir.path(), {"tokenizer.tiktoken:5:", "rank"});
  write_text(dir.file("tokenizer.tiktoken"), with_line(7, "BgYG"));
  expect_load_error(dir.path(), {"tokenizer.tiktoken:7:"});
  write_text(dir.file("tokenizer.tiktoken"), with_line(9, "CA== 2"));
  expect_load_error(dir.path(), {"tokenizer.tiktoken:9:", "rank 2 already given on line 3"});
  write_text(dir.file("tokenizer.tiktoken"), with_line(11, "AA== 10"));
  expect_load_error(dir.path(), {"tokenizer.tiktoken:11:", "already given on line 1"});
  write_text(dir.file("tokenizer.tiktoken"), with_line(1, ""));  // byte 0 has no rank
  expect_load_error(dir.path(), {"tokenizer.tiktoken", "single byte 0"});
  write_text(dir.file("tokenizer.tiktoken"), good_ranks);

  write_text(dir.file("tokenizer.json"), "{\n  \"pattern\": \"x\",\n  \"vocab_size\": oops\n}\n");
  expect_load_error(dir.path(), {"tokenizer.json:3:", "invalid JSON"});
  std::string bad = good_json;
  bad.replace(bad.find("\"vocab_size\": 269"), 17, "\"vocab_size\": 270");
  write_text(dir.file("tokenizer.json"), bad);
  const int vocab_line =
      1 + static_cast<int>(std::count(good_json.begin(), good_json.begin() + good_json.find("\"vocab_size\""), '\n'));
  expect_load_error(dir.path(), {"tokenizer.json:" + std::to_string(vocab_line) + ":", "vocab_size"});
  bad = good_json;
  bad.replace(bad.find("\"<|bos|>\": 260"), 14, "\"<|bos|>\": 100");
  write_text(dir.file("tokenizer.json"), bad);
  expect_load_error(dir.path(), {"<|bos|>", "already a mergeable rank"});
  write_text(dir.file("tokenizer.json"), "{\"pattern\": \"(unclosed\", \"vocab_size\": 269}");
  expect_load_error(dir.path(), {"tokenizer.json:1:", "split pattern"});
  write_text(dir.file("tokenizer.json"), "{\"pattern\": \"x\",\n\"colour\": 1}");
  expect_load_error(dir.path(), {"tokenizer.json:2:", "colour"});
  // Not a tokenizer folder at all: said so, with what one is.
  const std::string what_it_is = "(a tokenizer is a folder holding tokenizer.json and tokenizer.tiktoken";
  expect_load_error(dir.file("missing_dir"),
                    {"tokenizer folder '" + dir.file("missing_dir") + "' does not exist", what_it_is});
  expect_load_error(dir.file("tokenizer.json"), {"is a file, not a folder", what_it_is});
  const TempDir empty;
  expect_load_error(empty.path(), {"holds no tokenizer.json", what_it_is});
}

TEST(BitsPerByte, HandComputed) {
  // Three targets with losses 1.0, 2.0 (a special token: excluded), 0.5 nats and 3, 0, 2 bytes:
  // (1.0 + 0.5) / (ln 2 · 5) = 1.5 / 3.4657359... = 0.4328085...
  EXPECT_NEAR(bits_per_byte(1.5, 5), 0.43280851226, 1e-9);
  EXPECT_DOUBLE_EQ(bits_per_byte(std::log(2.0) * 10, 5), 2.0);
  EXPECT_TRUE(std::isnan(bits_per_byte(1.0, 0)));
}

TEST(Utf8Helpers, CountAndTruncate) {
  EXPECT_EQ(count_utf8_chars("aé日😀"), 4);
  EXPECT_EQ(truncate_utf8_chars("aé日😀b", 3), "aé日");
  EXPECT_EQ(truncate_utf8_chars("abc", 10), "abc");
  EXPECT_EQ(truncate_utf8_chars("abc", 0), "");
}

// The special tokens live in tokenizer.json, so their errors name it (not tokenizer.tiktoken); a
// wrongly typed vocab_size or id says so; ids beyond the vocabulary limit are refused before any
// table is sized by them (found by fuzz_tokenizer_files: a rank or id near 2^31 allocated ~64 GB).
TEST(TokenizerFiles, SpecialTokenAndSizeErrorsNameTheSidecar) {
  TempDir dir;
  save_small_tokenizer(dir.path());
  const std::string good_json = read_text(dir.file("tokenizer.json"));
  auto with_json = [&](const std::string& from, const std::string& to) {
    std::string j = good_json;
    j.replace(j.find(from), from.size(), to);
    write_text(dir.file("tokenizer.json"), j);
  };
  with_json("\"<|bos|>\": 260", "\"<|bos|>\": 100");
  expect_load_error(dir.path(), {"tokenizer.json:", "<|bos|>", "already a mergeable rank"});
  with_json("\"<|bos|>\": 260", "\"<|bos|>\": 261");  // 261 is the next special token's id
  expect_load_error(dir.path(), {"tokenizer.json:", "share id 261"});
  with_json("\"vocab_size\": 269", "\"vocab_size\": \"269\"");
  expect_load_error(dir.path(), {"tokenizer.json:", "\"vocab_size\" must be a non-negative integer, got \"269\""});
  with_json("\"<|bos|>\": 260", "\"<|bos|>\": 4e9");
  expect_load_error(dir.path(), {"tokenizer.json:", "<|bos|>", "needs an integer id"});
  with_json("\"<|bos|>\": 260", "\"<|bos|>\": 4000000000");
  expect_load_error(dir.path(), {"tokenizer.json:", "<|bos|>", "4000000000", "0..16777215"});
  with_json("\"<|bos|>\": 260", "\"<|bos|>\": 2147483000");
  expect_load_error(dir.path(), {"tokenizer.json:", "<|bos|>", "0..16777215"});
  with_json("\"vocab_size\": 269", "\"vocab_size\": 1e400");
  expect_load_error(dir.path(), {"tokenizer.json", "invalid JSON"});
  write_text(dir.file("tokenizer.json"), good_json);
  write_text(dir.file("tokenizer.tiktoken"), read_text(dir.file("tokenizer.tiktoken")) + "enp6enp6 2147483647\n");
  expect_load_error(dir.path(), {"tokenizer.tiktoken:", "rank 2147483647 is too large"});
}
