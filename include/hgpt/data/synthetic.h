// synthetic.h — the built-in corpus (`data: "synthetic"`): seeded byte-level documents that need
// in-context recall, mixed with grammar filler so that the loss curve means something.
//
// Tokens are bytes 0..255 plus <|bos|> = 256 (vocab 257). Every document starts with BOS, states
// its task in a short readable prefix and ends with '\n'. The four kinds:
//   copy: ..k...z.q... > kzq              selective copy: the letters of the field, in order
//   induct: xq#k7za@3bn | #k @3           induction: after a trigger symbol, the token that followed
//                                         it earlier in the document
//   recall: k=7 a=2 x=5 ; a:2 k:7         multi-query associative recall: the key's value
//   the small cat sees a red tree.        filler from a tiny grammar (no answers)
// The answer tokens (above: "kzq", the "k" and "3" after the query triggers, the values after
// "a:" and "k:") are marked per position by construction, so eval can score exact match per
// answer span. Generation uses its own integer RNG: the same seed gives the same bytes on every
// platform and compiler.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hgpt::data {

constexpr int64_t kByteVocab = 257;  // 256 bytes + <|bos|>
constexpr uint32_t kByteBos = 256;
constexpr const char* kByteBosText = "<|bos|>";

enum class Task : int8_t { None = 0, SelectiveCopy = 1, Induction = 2, AssociativeRecall = 3 };
constexpr int kNumTasks = 3;  // tasks with answers (None excluded); index = int(task) - 1

// "selective_copy", "induction", "assoc_recall"; "none" for Task::None.
const char* task_name(Task task);

struct Document {
  std::vector<uint32_t> tokens;  // starts with kByteBos
  std::vector<int8_t> task;      // per token: Task of the answer token at this position, else 0
  std::vector<int32_t> span;     // per token: index of its answer span in this document, else -1
};

// A document of a kind drawn from the seed (20% filler, 20% copy, 20% induction, 40% recall).
// Deterministic in seed.
Document generate_document(uint64_t seed);
// A document of the given kind (Task::None = filler). Deterministic in (seed, kind).
Document generate_document(uint64_t seed, Task kind);

// Mixes several 64-bit values into one well-spread seed (splitmix64 finaliser chain).
uint64_t mix_seed(uint64_t a, uint64_t b);

// Bytes as text; kByteBos rendered as "<|bos|>".
std::string decode_bytes(const std::vector<uint32_t>& tokens);
// Text as bytes; the literal "<|bos|>" becomes kByteBos, so encode_bytes(decode_bytes(t)) == t.
std::vector<uint32_t> encode_bytes(std::string_view text);

// A few prompts for greedy samples, each starting with "<|bos|>" (feed encode_bytes(prompt)):
// a filler start, then an induction, a recall and a copy prompt cut just before their answer.
std::vector<std::string> sample_prompts();

}  // namespace hgpt::data
