// utf8.h — counting and cutting UTF-8 text by code points (tok_train's character budgets).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace hgpt::tokenizer {

// Number of code points in a UTF-8 string (bytes that are not continuation bytes).
int64_t count_utf8_chars(std::string_view text);
// Keeps at most max_chars Unicode code points of a UTF-8 string (cut on a code point boundary).
std::string truncate_utf8_chars(std::string text, int64_t max_chars);

}  // namespace hgpt::tokenizer
