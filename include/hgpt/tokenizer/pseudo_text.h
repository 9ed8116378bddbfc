// pseudo_text.h — generated English-like text for training and benchmarking tokenizers when no
// real text is at hand (tok_train without files, bench_tokenizer, the tokenizer tests). Not the
// built-in training corpus of data/synthetic.h, which holds the in-context tasks the model learns.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace hgpt::tokenizer {

// About `approx_bytes` bytes of deterministic documents: words of a generated lexicon drawn by a
// Zipf-like law, numbers, punctuation, newlines and some Cyrillic, CJK and emoji text.
std::vector<std::string> pseudo_text(int64_t approx_bytes, uint64_t seed = 1234);

}  // namespace hgpt::tokenizer
