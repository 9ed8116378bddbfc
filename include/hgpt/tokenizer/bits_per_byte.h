// bits_per_byte.h — the validation metric that does not depend on the tokenizer (nanochat's bpb).
#pragma once

#include <cmath>
#include <cstdint>

namespace hgpt::tokenizer {

// Sum of token losses (nats) / (ln 2 · sum of target bytes), a token's bytes from
// Tokenizer::token_byte_lengths(). Special-token targets count 0 bytes (exclude their losses from
// sum_nats too). 0 bytes → NaN.
inline double bits_per_byte(double sum_nats, int64_t sum_bytes) {
  if (sum_bytes <= 0) return std::nan("");
  return sum_nats / (std::log(2.0) * static_cast<double>(sum_bytes));
}

}  // namespace hgpt::tokenizer
