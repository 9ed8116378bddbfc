// corpus_parse.h — an independent reader of the built-in corpus's text (tests only): parses one
// document's text and recomputes where its answers are and what they must be, without using the
// generator's code, so the generator's marks can be checked against it.
#pragma once

#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "hgpt/data/synthetic.h"
#include "hgpt/strings.h"

namespace hgpt::data::corpus {

struct ParsedDoc {
  Task task = Task::None;
  std::vector<std::vector<int>> spans;  // answer spans as char positions in the text
  std::string error;                    // empty when the text is well formed and answers check out
};

// Space-separated words of text[begin, end) with their start positions.
inline std::vector<std::pair<int, std::string>> words_at(const std::string& text, int begin, int end) {
  std::vector<std::pair<int, std::string>> out;
  int i = begin;
  while (i < end) {
    while (i < end && text[i] == ' ') ++i;
    int j = i;
    while (j < end && text[j] != ' ') ++j;
    if (j > i) out.emplace_back(i, text.substr(i, j - i));
    i = j;
  }
  return out;
}

inline ParsedDoc failed(ParsedDoc d, std::string why) {
  d.error = std::move(why);
  return d;
}

using hgpt::starts_with;

inline ParsedDoc parse_copy(const std::string& text) {
  ParsedDoc d{Task::SelectiveCopy, {}, ""};
  const size_t gt = text.find(" > ");
  if (gt == std::string::npos) return failed(d, "no ' > '");
  std::string letters;
  for (size_t i = 6; i < gt; ++i) {
    const char c = text[i];
    if (c >= 'a' && c <= 'z')
      letters += c;
    else if (c != '.')
      return failed(d, "field holds '" + std::string(1, c) + "'");
  }
  const std::string answer = text.substr(gt + 3, text.size() - 1 - (gt + 3));
  if (answer != letters) return failed(d, "answer " + answer + " != letters " + letters);
  if (letters.size() < 2 || letters.size() > 4) return failed(d, "letter count");
  std::vector<int> span;
  for (size_t i = gt + 3; i + 1 < text.size(); ++i) span.push_back(static_cast<int>(i));
  d.spans.push_back(span);
  return d;
}

inline ParsedDoc parse_induction(const std::string& text) {
  ParsedDoc d{Task::Induction, {}, ""};
  const size_t bar = text.find(" |");
  if (bar == std::string::npos) return failed(d, "no ' |'");
  const std::string ctx = text.substr(8, bar - 8);
  std::set<char> seen;
  for (const auto& [pos, word] : words_at(text, static_cast<int>(bar) + 2, static_cast<int>(text.size()) - 1)) {
    if (word.size() != 2) return failed(d, "query '" + word + "'");
    const char sym = word[0];
    if (std::string("#@$%&*").find(sym) == std::string::npos) return failed(d, "not a trigger");
    if (!seen.insert(sym).second) return failed(d, "trigger queried twice");
    const size_t at = ctx.find(sym);
    if (at == std::string::npos || ctx.find(sym, at + 1) != std::string::npos || at + 1 >= ctx.size())
      return failed(d, "trigger not exactly once in the context");
    if (ctx[at + 1] != word[1]) return failed(d, "induction answer differs from the earlier token");
    d.spans.push_back({pos + 1});
  }
  if (d.spans.empty()) return failed(d, "no queries");
  return d;
}

inline ParsedDoc parse_recall(const std::string& text) {
  ParsedDoc d{Task::AssociativeRecall, {}, ""};
  const size_t semi = text.find(" ;");
  if (semi == std::string::npos) return failed(d, "no ' ;'");
  std::map<std::string, char> table;
  for (const auto& [pos, word] : words_at(text, 8, static_cast<int>(semi))) {
    if (word.size() != 3 || word[1] != '=') return failed(d, "pair '" + word + "'");
    if (!table.emplace(word.substr(0, 1), word[2]).second) return failed(d, "key twice");
  }
  for (const auto& [pos, word] : words_at(text, static_cast<int>(semi) + 2, static_cast<int>(text.size()) - 1)) {
    if (word.size() != 3 || word[1] != ':') return failed(d, "query '" + word + "'");
    const auto it = table.find(word.substr(0, 1));
    if (it == table.end()) return failed(d, "query of an unknown key");
    if (it->second != word[2]) return failed(d, "recall answer differs from the key's value");
    d.spans.push_back({pos + 2});
  }
  if (d.spans.empty()) return failed(d, "no queries");
  return d;
}

inline ParsedDoc parse_filler(const std::string& text) {
  ParsedDoc d{Task::None, {}, ""};
  static const std::set<std::string> vocab = {"the",    "a",     "one",   "my",    "this",  "small", "red",   "old",
                                              "happy",  "quiet", "big",   "green", "cold",  "cat",   "dog",   "bird",
                                              "tree",   "boy",   "girl",  "house", "river", "book",  "car",   "fish",
                                              "hill",   "sees",  "likes", "finds", "takes", "moves", "holds", "runs",
                                              "sleeps", "sings", "waits", "near",  "under", "over",  "by",    "behind"};
  if (text.size() < 3 || text.compare(text.size() - 2, 2, ".\n") != 0) return failed(d, "not '.\\n' at end");
  for (auto [pos, word] : words_at(text, 0, static_cast<int>(text.size()) - 1)) {
    if (word.back() == '.') word.pop_back();
    if (!vocab.count(word)) return failed(d, "unknown word '" + word + "'");
  }
  return d;
}

// `text` is one document without its BOS: "<prefix>...\n".
inline ParsedDoc parse_document(const std::string& text) {
  if (text.empty() || text.back() != '\n') return ParsedDoc{Task::None, {}, "no newline at end"};
  if (starts_with(text, "copy: ")) return parse_copy(text);
  if (starts_with(text, "induct: ")) return parse_induction(text);
  if (starts_with(text, "recall: ")) return parse_recall(text);
  return parse_filler(text);
}

}  // namespace hgpt::data::corpus
