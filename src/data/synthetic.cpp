// synthetic.cpp — the built-in corpus generator: seeded byte-level task documents and filler.
#include "hgpt/data/synthetic.h"

#include <algorithm>
#include <array>

namespace hgpt::data {
namespace {

// ---------------------------------------------------------------------------------------------
// A small self-contained RNG (splitmix64): std:: distributions differ between standard libraries,
// and the corpus must be the same bytes everywhere so runs and resumes are reproducible.
constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ULL;

uint64_t fmix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() { return fmix64(state_ += kGolden); }
  // Uniform in [0, n) by multiply-high (the bias is below 2^-50 for the small n used here).
  int below(int n) {
    return static_cast<int>((static_cast<unsigned __int128>(next()) * static_cast<uint64_t>(n)) >> 64);
  }
  int between(int lo, int hi) { return lo + below(hi - lo + 1); }  // inclusive
  char pick(std::string_view chars) { return chars[below(static_cast<int>(chars.size()))]; }
  template <typename T, size_t N>
  const T& pick(const std::array<T, N>& items) {
    return items[below(static_cast<int>(N))];
  }
  template <typename T>
  void shuffle(std::vector<T>& v) {  // Fisher–Yates with our own draws
    for (int i = static_cast<int>(v.size()) - 1; i > 0; --i) std::swap(v[i], v[below(i + 1)]);
  }

 private:
  uint64_t state_;
};

constexpr std::string_view kLetters = "abcdefghijklmnopqrstuvwxyz";
constexpr std::string_view kDigits = "0123456789";
constexpr std::string_view kAlnum = "abcdefghijklmnopqrstuvwxyz0123456789";
constexpr std::string_view kTriggers = "#@$%&*";

// ---------------------------------------------------------------------------------------------
// Appends text and answers to a document, keeping the per-token task and span marks in step.
class DocBuilder {
 public:
  DocBuilder() { push(kByteBos, Task::None, -1); }
  void text(std::string_view s) {
    for (char c : s) push(static_cast<unsigned char>(c), Task::None, -1);
  }
  void answer(std::string_view s, Task task) {  // one answer span
    for (char c : s) push(static_cast<unsigned char>(c), task, num_spans_);
    ++num_spans_;
  }
  Document finish() {
    text("\n");
    return std::move(doc_);
  }

 private:
  void push(uint32_t token, Task task, int32_t span) {
    doc_.tokens.push_back(token);
    doc_.task.push_back(static_cast<int8_t>(task));
    doc_.span.push_back(span);
  }
  Document doc_;
  int32_t num_spans_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Filler: sentences from a tiny grammar, "det [adj] noun verb ...".
constexpr std::array<const char*, 5> kDets = {"the", "a", "one", "my", "this"};
constexpr std::array<const char*, 8> kAdjs = {"small", "red", "old", "happy", "quiet", "big", "green", "cold"};
constexpr std::array<const char*, 12> kNouns = {"cat",   "dog",   "bird", "tree", "boy",  "girl",
                                                "house", "river", "book", "car",  "fish", "hill"};
constexpr std::array<const char*, 6> kTransitive = {"sees", "likes", "finds", "takes", "moves", "holds"};
constexpr std::array<const char*, 4> kIntransitive = {"runs", "sleeps", "sings", "waits"};
constexpr std::array<const char*, 5> kPreps = {"near", "under", "over", "by", "behind"};

std::string noun_phrase(Rng& rng) {
  std::string s = rng.pick(kDets);
  if (rng.below(2) == 0) s += std::string(" ") + rng.pick(kAdjs);
  return s + " " + rng.pick(kNouns);
}

std::string sentence(Rng& rng) {
  std::string s = noun_phrase(rng);
  if (rng.below(2) == 0) {
    s += std::string(" ") + rng.pick(kTransitive) + " " + noun_phrase(rng);
  } else {
    s += std::string(" ") + rng.pick(kIntransitive);
    if (rng.below(2) == 0) s += std::string(" ") + rng.pick(kPreps) + " " + noun_phrase(rng);
  }
  return s + ".";
}

Document filler_document(Rng& rng) {
  DocBuilder b;
  const int target = rng.between(40, 140);
  std::string text = sentence(rng);
  while (static_cast<int>(text.size()) < target) text += " " + sentence(rng);
  b.text(text);
  return b.finish();
}

// ---------------------------------------------------------------------------------------------
// Selective copy: "copy: " + a field of dots with a few letters + " > " + the letters in order.
Document copy_document(Rng& rng) {
  DocBuilder b;
  const int field_len = rng.between(12, 24);
  const int num_letters = rng.between(2, 4);
  std::vector<int> slots(field_len);
  for (int i = 0; i < field_len; ++i) slots[i] = i;
  rng.shuffle(slots);
  std::sort(slots.begin(), slots.begin() + num_letters);
  std::string field(field_len, '.');
  std::string letters;
  for (int i = 0; i < num_letters; ++i) {
    field[slots[i]] = rng.pick(kLetters);
    letters += field[slots[i]];
  }
  b.text("copy: " + field + " > ");
  b.answer(letters, Task::SelectiveCopy);
  return b.finish();
}

// ---------------------------------------------------------------------------------------------
// Induction: "induct: " + alphanumeric noise holding 1–3 trigger pairs "<sym><tok>" (each symbol
// once) + " |" + the triggers again, each followed by its token (the answer).
Document induction_document(Rng& rng) {
  DocBuilder b;
  const int num_triggers = rng.between(1, 3);
  std::vector<char> triggers(kTriggers.begin(), kTriggers.end());
  rng.shuffle(triggers);
  triggers.resize(num_triggers);
  std::vector<char> values(num_triggers);
  // The context as units (single noise chars or whole trigger pairs) so no pair is ever split.
  std::vector<std::string> units(rng.between(20, 44));
  for (auto& u : units) u = std::string(1, rng.pick(kAlnum));
  for (int i = 0; i < num_triggers; ++i) {
    values[i] = rng.pick(kAlnum);
    const int at = rng.below(static_cast<int>(units.size()) + 1);
    units.insert(units.begin() + at, std::string{triggers[i], values[i]});
  }
  std::string context;
  for (const auto& u : units) context += u;
  b.text("induct: " + context + " |");
  std::vector<int> order(num_triggers);
  for (int i = 0; i < num_triggers; ++i) order[i] = i;
  rng.shuffle(order);
  for (int i : order) {
    b.text(std::string(" ") + triggers[i]);
    b.answer(std::string(1, values[i]), Task::Induction);
  }
  return b.finish();
}

// ---------------------------------------------------------------------------------------------
// Associative recall: "recall: " + 2–6 pairs "<letter>=<digit>" (distinct keys) + " ;" +
// 1–4 queries "<key>:" each followed by its value (the answer).
Document recall_document(Rng& rng) {
  DocBuilder b;
  const int num_pairs = rng.between(2, 6);
  std::vector<std::string> keys;
  while (static_cast<int>(keys.size()) < num_pairs) {
    std::string key{rng.pick(kLetters)};
    if (std::find(keys.begin(), keys.end(), key) == keys.end()) keys.push_back(key);
  }
  std::vector<char> values(num_pairs);
  std::string pairs;
  for (int i = 0; i < num_pairs; ++i) {
    values[i] = rng.pick(kDigits);
    pairs += (i ? " " : "") + keys[i] + "=" + values[i];
  }
  b.text("recall: " + pairs + " ;");
  std::vector<int> order(num_pairs);
  for (int i = 0; i < num_pairs; ++i) order[i] = i;
  rng.shuffle(order);
  order.resize(rng.between(1, std::min(4, num_pairs)));
  for (int i : order) {
    b.text(" " + keys[i] + ":");
    b.answer(std::string(1, values[i]), Task::AssociativeRecall);
  }
  return b.finish();
}

// A prompt: the document cut just before its first answer token.
std::string prompt_before_answer(uint64_t seed, Task kind) {
  const Document doc = generate_document(seed, kind);
  const auto first = std::find_if(doc.task.begin(), doc.task.end(), [](int8_t t) { return t != 0; });
  const std::vector<uint32_t> cut(doc.tokens.begin(), doc.tokens.begin() + (first - doc.task.begin()));
  return decode_bytes(cut);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
const char* task_name(Task task) {
  switch (task) {
    case Task::SelectiveCopy:
      return "selective_copy";
    case Task::Induction:
      return "induction";
    case Task::AssociativeRecall:
      return "assoc_recall";
    case Task::None:
      break;
  }
  return "none";
}

uint64_t mix_seed(uint64_t a, uint64_t b) { return fmix64(fmix64(a) ^ (b + kGolden)); }

Document generate_document(uint64_t seed, Task kind) {
  Rng rng(mix_seed(seed, static_cast<uint64_t>(kind)));
  switch (kind) {
    case Task::SelectiveCopy:
      return copy_document(rng);
    case Task::Induction:
      return induction_document(rng);
    case Task::AssociativeRecall:
      return recall_document(rng);
    case Task::None:
      break;
  }
  return filler_document(rng);
}

Document generate_document(uint64_t seed) {
  // 20% filler, 20% selective copy, 20% induction, 40% associative recall: enough plain text for
  // a meaningful language loss, and recall (the task with the fewest answers per token) often
  // enough that the small CPU model starts using its documents' values within a few hundred steps
  // (with 25% it did so later and less reliably across seeds; docs/BENCHMARKS.md).
  const int draw = Rng(seed).below(5);
  const Task kind = draw == 0   ? Task::None
                    : draw == 1 ? Task::SelectiveCopy
                    : draw == 2 ? Task::Induction
                                : Task::AssociativeRecall;
  return generate_document(seed, kind);
}

std::string decode_bytes(const std::vector<uint32_t>& tokens) {
  std::string out;
  out.reserve(tokens.size());
  for (uint32_t t : tokens) {
    if (t == kByteBos) {
      out += kByteBosText;
    } else if (t < 256) {
      out += static_cast<char>(t);
    } else {
      out += "<|" + std::to_string(t) + "|>";  // outside the byte vocab (a model's spare logits)
    }
  }
  return out;
}

std::vector<uint32_t> encode_bytes(std::string_view text) {
  const std::string_view bos = kByteBosText;
  std::vector<uint32_t> out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    if (text.compare(i, bos.size(), bos) == 0) {
      out.push_back(kByteBos);
      i += bos.size();
    } else {
      out.push_back(static_cast<unsigned char>(text[i++]));
    }
  }
  return out;
}

std::vector<std::string> sample_prompts() {
  return {std::string(kByteBosText) + "the small ", prompt_before_answer(1, Task::Induction),
          prompt_before_answer(2, Task::AssociativeRecall), prompt_before_answer(3, Task::SelectiveCopy)};
}

}  // namespace hgpt::data
