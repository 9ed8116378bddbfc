// utf8.cpp — code-point counting and cutting of UTF-8 text (utf8.h).
#include "hgpt/tokenizer/utf8.h"

namespace hgpt::tokenizer {

int64_t count_utf8_chars(std::string_view text) {
  int64_t n = 0;
  for (char c : text) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

std::string truncate_utf8_chars(std::string text, int64_t max_chars) {
  if (max_chars < 0) return text;
  int64_t chars = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) {
      if (chars == max_chars) {
        text.resize(i);
        break;
      }
      ++chars;
    }
  }
  return text;
}

}  // namespace hgpt::tokenizer
