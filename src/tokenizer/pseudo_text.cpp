// pseudo_text.cpp — generated English-like text: tok_train's input when no files are given and
// the tokenizer benchmark's and tests' input. Words follow a Zipf-like law over a generated
// lexicon, so BPE finds realistic structure; numbers, punctuation, newlines, and some Cyrillic,
// CJK and emoji text exercise every branch of the split pattern.
#include <algorithm>
#include <cmath>
#include <random>

#include "hgpt/tokenizer/pseudo_text.h"

namespace hgpt::tokenizer {

std::vector<std::string> pseudo_text(int64_t approx_bytes, uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto uniform = [&](int n) { return static_cast<int>(rng() % static_cast<uint64_t>(n)); };
  // A lexicon of pronounceable words built from syllables.
  static const char* kOnsets[] = {"b", "c", "d", "f",  "g",  "h",  "l",  "m",  "n",  "p",  "r", "s",
                                  "t", "v", "w", "th", "st", "pr", "ch", "sh", "tr", "gr", ""};
  static const char* kVowels[] = {"a", "e", "i", "o", "u", "ea", "ou", "io", "ai"};
  static const char* kCodas[] = {"", "", "n", "r", "s", "t", "l", "nd", "ng", "st", "ck"};
  std::vector<std::string> lexicon;
  for (int i = 0; i < 4000; ++i) {
    std::string w;
    const int syllables = 1 + uniform(3);
    for (int s = 0; s < syllables; ++s) {
      w += kOnsets[uniform(sizeof(kOnsets) / sizeof(*kOnsets))];
      w += kVowels[uniform(sizeof(kVowels) / sizeof(*kVowels))];
      w += kCodas[uniform(sizeof(kCodas) / sizeof(*kCodas))];
    }
    lexicon.push_back(w);
  }
  static const char* kForeign[] = {"мир",      "данные", "модель", "数据",  "模型", "训练",
                                   "トークン", "😀",      "🚀",      "naïve", "café", "e\xCC\x81"};
  static const char* kPunct[] = {",", ",", ".", ".", ".", ";", ":", "!", "?", " -", "...", "\"", "'s", "'re"};
  std::vector<double> cdf(lexicon.size());
  double total = 0;
  for (size_t i = 0; i < lexicon.size(); ++i) cdf[i] = total += 1.0 / std::pow(static_cast<double>(i + 1), 1.07);
  std::uniform_real_distribution<double> unit(0.0, total);

  std::vector<std::string> docs;
  int64_t bytes = 0;
  while (bytes < approx_bytes) {
    std::string doc;
    const int target = 200 + uniform(3000);
    bool sentence_start = true;
    while (static_cast<int>(doc.size()) < target) {
      const int kind = uniform(100);
      std::string w;
      if (kind < 88) {
        w = lexicon[std::lower_bound(cdf.begin(), cdf.end(), unit(rng)) - cdf.begin()];
        if (sentence_start) w[0] = static_cast<char>(w[0] - 'a' + 'A');
      } else if (kind < 94) {
        w = std::to_string(rng() % (kind < 91 ? 100 : 100000));
      } else {
        w = kForeign[uniform(sizeof(kForeign) / sizeof(*kForeign))];
      }
      if (!doc.empty()) doc += ' ';
      doc += w;
      sentence_start = false;
      if (uniform(8) == 0) {
        const char* p = kPunct[uniform(sizeof(kPunct) / sizeof(*kPunct))];
        doc += p;
        sentence_start = p[0] == '.' || p[0] == '!' || p[0] == '?';
        if (uniform(6) == 0) doc += uniform(3) == 0 ? "\n\n" : "\n";
      }
    }
    bytes += static_cast<int64_t>(doc.size());
    docs.push_back(std::move(doc));
  }
  return docs;
}

}  // namespace hgpt::tokenizer
