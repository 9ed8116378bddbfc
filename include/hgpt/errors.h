// errors.h — the one type for user errors (bad config, bad data, bad files, bad flags).
//
// A UserError carries one clear line that names the problem and the fix; the tools print it as
// "error: <message>" and exit with code 2 before doing any work. Internal bugs use TORCH_CHECK /
// ordinary exceptions instead and exit 1.
#pragma once

#include <exception>
#include <iostream>
#include <stdexcept>
#include <string>

namespace hgpt {

struct UserError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

constexpr int kExitUserError = 2;

// The body of every tool's main: runs `body` and turns a UserError into "error: ..." and exit 2,
// any other exception into "fatal: ..." and exit 1.
template <class Body>
int run_tool(Body&& body) {
  try {
    return body();
  } catch (const UserError& e) {
    std::cerr << "error: " << e.what() << std::endl;
    return kExitUserError;
  } catch (const std::exception& e) {
    std::cerr << "fatal: " << e.what() << std::endl;
    return 1;
  }
}

}  // namespace hgpt
