// fuzz_tokenizer_roundtrip.cpp — encode/decode: any byte string (invalid UTF-8 included) encodes to
// ids below the vocabulary size that decode back to the same bytes, and the batch encoder agrees
// with the single one.
//
// Input: the text. The tokenizer is trained once, on the built-in synthetic corpus.
#include "fuzz/fuzz_util.h"
#include "hgpt/tokenizer/pseudo_text.h"
#include "hgpt/tokenizer/tokenizer.h"

namespace {
const hgpt::tokenizer::Tokenizer& tokenizer() {
  static const hgpt::tokenizer::Tokenizer t = [] {
    hgpt::tokenizer::TrainOptions options;
    options.vocab_size = 512;
    options.threads = 1;
    return hgpt::tokenizer::Tokenizer::train(hgpt::tokenizer::pseudo_text(200000), options);
  }();
  return t;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const auto ids = tokenizer().encode(text);
  for (uint32_t id : ids) {
    if (id >= tokenizer().vocab_size()) hgpt::fuzz::property_failed("encode gave an id beyond the vocabulary");
  }
  if (tokenizer().decode(ids) != text) hgpt::fuzz::property_failed("decode(encode(text)) != text");
  std::string pieces;
  for (const auto& piece : tokenizer().split(text)) pieces += piece;
  if (pieces != text) hgpt::fuzz::property_failed("the split pieces do not cover the text");
  if (tokenizer().encode_batch({text, text}, 2) != std::vector<std::vector<uint32_t>>{ids, ids})
    hgpt::fuzz::property_failed("encode_batch disagrees with encode");
  return 0;
}
