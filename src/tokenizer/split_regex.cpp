// split_regex.cpp — the split regex (PCRE2, UTF + UCP, JIT when available) that cuts
// text into pieces before BPE, and the default pattern. Invalid UTF-8 never matches the pattern
// (PCRE2_MATCH_INVALID_UTF); the bytes between matches become pieces of their own, so every input
// byte lands in exactly one piece and encoding round-trips.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stdexcept>

#include "hgpt/errors.h"
#include "src/tokenizer/tokenizer_impl.h"

namespace hgpt::tokenizer {

const char* const kDefaultSplitPattern =
    R"('(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,2}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+)";

std::vector<std::string> default_special_tokens() {
  return {"<|bos|>",          "<|user_start|>", "<|user_end|>",     "<|assistant_start|>", "<|assistant_end|>",
          "<|python_start|>", "<|python_end|>", "<|output_start|>", "<|output_end|>"};
}

namespace detail {
namespace {

// Per-thread matching state: match data (ovector) and a JIT stack larger than PCRE2's 32 KiB
// default, so long whitespace or punctuation runs do not hit the JIT stack limit.
struct ThreadMatchState {
  pcre2_match_data* data = nullptr;
  pcre2_match_context* context = nullptr;
  pcre2_jit_stack* jit_stack = nullptr;
  ThreadMatchState() {
    data = pcre2_match_data_create(32, nullptr);
    context = pcre2_match_context_create(nullptr);
    jit_stack = pcre2_jit_stack_create(64 * 1024, 8 * 1024 * 1024, nullptr);
    if (data == nullptr || context == nullptr) throw std::bad_alloc();
    if (jit_stack != nullptr) pcre2_jit_stack_assign(context, nullptr, jit_stack);
  }
  ~ThreadMatchState() {
    pcre2_jit_stack_free(jit_stack);
    pcre2_match_context_free(context);
    pcre2_match_data_free(data);
  }
};

ThreadMatchState& thread_state() {
  thread_local ThreadMatchState state;
  return state;
}

// Length of the UTF-8 sequence a lead byte announces (1 for anything that is not a valid lead).
size_t utf8_step(unsigned char c) {
  if (c >= 0xF0 && c <= 0xF4) return 4;
  if (c >= 0xE0) return c <= 0xEF ? 3 : 1;
  if (c >= 0xC2) return 2;
  return 1;
}

}  // namespace

SplitRegex::SplitRegex(const std::string& pattern) {
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* code =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                    PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &error_code, &error_offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error_code, message, sizeof(message));
    throw UserError("split pattern does not compile at offset " + std::to_string(error_offset) + ": " +
                    reinterpret_cast<const char*>(message) + " (pattern: " + pattern + ")");
  }
  code_ = code;
  jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;  // falls back to the interpreter
}

SplitRegex::~SplitRegex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

void SplitRegex::split(std::string_view text, std::vector<std::string_view>& pieces) const {
  auto* code = static_cast<pcre2_code*>(code_);
  ThreadMatchState& st = thread_state();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  const size_t n = text.size();
  size_t pos = 0;        // where the next match attempt starts
  size_t gap_start = 0;  // start of bytes not yet assigned to a piece
  while (pos < n) {
    int rc = jit_ ? pcre2_jit_match(code, subject, n, pos, 0, st.data, st.context)
                  : pcre2_match(code, subject, n, pos, 0, st.data, st.context);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT)  // pathological input: retry with the interpreter
      rc = pcre2_match(code, subject, n, pos, PCRE2_NO_JIT, st.data, st.context);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(rc, message, sizeof(message));
      throw std::runtime_error(std::string("split regex match failed: ") + reinterpret_cast<const char*>(message));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(st.data);
    const size_t start = ov[0], end = ov[1];
    if (end == start) {  // an empty match (possible with user patterns): step over one character
      pos = start + utf8_step(static_cast<unsigned char>(text[start]));
      continue;
    }
    if (start > gap_start) pieces.push_back(text.substr(gap_start, start - gap_start));
    pieces.push_back(text.substr(start, end - start));
    pos = gap_start = end;
  }
  if (n > gap_start) pieces.push_back(text.substr(gap_start, n - gap_start));
}

}  // namespace detail
}  // namespace hgpt::tokenizer
