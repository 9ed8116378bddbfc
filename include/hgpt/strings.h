// strings.h — small string helpers: what C++17 lacks, and how durations are printed.
#pragma once

#include <string>
#include <string_view>

namespace hgpt {

inline bool starts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

inline bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// "1h02m", "3m05s", "12s" (rounded to whole seconds); "?" for a negative (unknown) duration.
std::string format_duration(double seconds);

// The 64-bit FNV-1a hash of `bytes` as 16 lowercase hex digits: a file's checksum in meta files.
std::string fnv1a64_hex(std::string_view bytes);

}  // namespace hgpt
