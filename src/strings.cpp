// strings.cpp — the string helpers of strings.h.
#include "hgpt/strings.h"

#include <cmath>
#include <cstdint>
#include <cstdio>

namespace hgpt {

std::string format_duration(double s) {
  char buf[32];
  if (!(s >= 0)) return "?";  // negative or NaN: unknown
  const long total = std::lround(s);
  if (total >= 3600)
    std::snprintf(buf, sizeof(buf), "%ldh%02ldm", total / 3600, (total % 3600) / 60);
  else if (total >= 60)
    std::snprintf(buf, sizeof(buf), "%ldm%02lds", total / 60, total % 60);
  else
    std::snprintf(buf, sizeof(buf), "%lds", total);
  return buf;
}

std::string fnv1a64_hex(std::string_view bytes) {
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (const char byte : bytes) hash = (hash ^ static_cast<unsigned char>(byte)) * 0x100000001b3ULL;
  char text[17];
  std::snprintf(text, sizeof(text), "%016llx", static_cast<unsigned long long>(hash));
  return text;
}

}  // namespace hgpt
