// errors.h — the one type for user errors (bad config, bad data, bad files, bad flags).
//
// A UserError carries one clear line that names the problem and the fix; the tools print it as
// "error: <message>" and exit with code 2 before doing any work. Internal bugs use TORCH_CHECK /
// ordinary exceptions instead and exit 1.
#pragma once

#include <stdexcept>
#include <string>

namespace hgpt {

struct UserError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

constexpr int kExitUserError = 2;

}  // namespace hgpt
