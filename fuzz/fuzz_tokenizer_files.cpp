// fuzz_tokenizer_files.cpp — a tokenizer directory: any tokenizer.tiktoken + tokenizer.json pair
// either loads or gives a UserError; a loaded tokenizer encodes and decodes text back to itself
// and saves files that load to the same tokenizer.
//
// Input: tokenizer.tiktoken, NUL, tokenizer.json, optionally NUL and a text to round-trip.
#include "fuzz/fuzz_util.h"
#include "hgpt/errors.h"
#include "hgpt/files.h"
#include "hgpt/tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hgpt;
  const auto parts = fuzz::split_at_nul(data, size);
  if (parts.size() < 2) return 0;
  const std::string dir = fuzz::scratch_dir() + "/tokenizer";
  make_dirs(dir);
  fuzz::scratch_file("tokenizer/tokenizer.tiktoken", parts[0]);
  fuzz::scratch_file("tokenizer/tokenizer.json", parts[1]);
  try {
    const auto tok = tokenizer::Tokenizer::load(dir);
    const std::string text = parts.size() > 2 ? parts[2] : "Hello, world! 1234 ünïcödé\n";
    if (tok.decode(tok.encode(text)) != text) fuzz::property_failed("decode(encode(text)) != text");
    if (static_cast<int64_t>(tok.token_byte_lengths().size()) != tok.vocab_size())
      fuzz::property_failed("token_byte_lengths() does not cover the vocabulary");
    const std::string copy = fuzz::scratch_dir() + "/saved";
    tok.save(copy);
    const auto reloaded = tokenizer::Tokenizer::load(copy);
    if (reloaded.vocab_size() != tok.vocab_size() || reloaded.special_tokens() != tok.special_tokens() ||
        reloaded.encode(text) != tok.encode(text))
      fuzz::property_failed("save → load changed the tokenizer");
  } catch (const UserError&) {}
  return 0;
}
