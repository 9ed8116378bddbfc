// errors.h — the one type for user errors (bad config, bad data, bad files, bad flags).
//
// A UserError carries one clear line that names the problem and the fix; the tools print it as
// "error: <message>" and exit with code 2 before doing any work. Internal bugs use TORCH_CHECK /
// ordinary exceptions instead and exit 1.
#pragma once

#include <exception>
#include <iostream>
#include <new>
#include <stdexcept>
#include <string>

namespace hgpt {

struct UserError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

constexpr int kExitUserError = 2;

// An exception's message without the C++ stack trace that LibTorch's errors append.
inline std::string message_without_backtrace(const std::exception& e) {
  std::string text = e.what();
  const auto trace = text.find("\nException raised from ");
  if (trace != std::string::npos) text.resize(trace);
  return text;
}

// The body of every tool's main: runs `body` and turns a UserError into "error: ..." and exit 2,
// running out of memory into one "error: out of memory" line and exit 2 (the input asked for more
// than the machine has), any other exception into "fatal: ..." (no stack trace) and exit 1.
template <class Body>
int run_tool(Body&& body) {
  static const char* kMemoryHint =
      "; ask for less at once (device_batch_size, eval_tokens, --num_samples, a smaller model)";
  try {
    return body();
  } catch (const UserError& e) {
    std::cerr << "error: " << e.what() << std::endl;
    return kExitUserError;
  } catch (const std::bad_alloc&) {
    std::cerr << "error: out of memory" << kMemoryHint << std::endl;
    return kExitUserError;
  } catch (const std::exception& e) {
    const std::string message = message_without_backtrace(e);
    if (message.find("can't allocate memory") != std::string::npos ||
        message.find("out of memory") != std::string::npos) {
      std::cerr << "error: out of memory (" << message << ")" << kMemoryHint << std::endl;
      return kExitUserError;
    }
    std::cerr << "fatal: " << message << std::endl;
    return 1;
  }
}

}  // namespace hgpt
