// text_codec.h — text ↔ tokens as a run saw them: its tokenizer, or the built-in corpus's bytes
// (0–255, <|bos|> = 256). Prompts start with <|bos|>, as every training document does.
#pragma once

#include "hgpt/config.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace hgpt::tokenizer {
class Tokenizer;
}

namespace hgpt::infer {

class TextCodec {
 public:
  // A codec over `tokenizer` (not owned; it must outlive the codec), or bytes when null.
  explicit TextCodec(const tokenizer::Tokenizer* tokenizer = nullptr) : tokenizer_(tokenizer) {}
  // The tokenizer in `tokenizer_dir` when given, else the run's (config key `tokenizer`), checked
  // against the model's vocabulary and, when the run recorded one, against `trained_fingerprint`
  // (tokenizer_fingerprint of the tokenizer it was trained with): UserError when it is not that
  // tokenizer. Without one, bytes, which only the built-in corpus is written in (knows_text()).
  static TextCodec for_run(const Config& config, const std::string& tokenizer_dir = "",
                           const std::string& trained_fingerprint = "");

  // False for a run on token shards without a tokenizer: its tokens have no known text.
  bool knows_text() const { return knows_text_; }
  const tokenizer::Tokenizer* tokenizer() const { return tokenizer_; }  // null: bytes

  // <|bos|> then the text (the byte codec reads a leading literal "<|bos|>" as that token).
  std::vector<uint32_t> encode_prompt(const std::string& text) const;
  // Ids the tokenizer does not know (a padded vocabulary can sample them) are dropped.
  std::string decode(const std::vector<uint32_t>& ids) const;
  uint32_t bos() const;  // the document separator: generation stops there

 private:
  std::shared_ptr<const tokenizer::Tokenizer> owned_;  // for_run's tokenizer
  const tokenizer::Tokenizer* tokenizer_;              // null: bytes
  bool knows_text_ = true;
};

}  // namespace hgpt::infer
