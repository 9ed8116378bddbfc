// cli.h — how every tool parses its CLI11 command line: --help prints and exits 0, a bad flag
// prints "error: ... (see --help)" and exits 2 (a user error, like every other).
#pragma once

#include "hgpt/errors.h"

#include <CLI/CLI.hpp>

#include <iostream>
#include <optional>

namespace hgpt {

// Parses argv into `app`; returns the exit code to stop with, or nothing to go on.
inline std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "error: " << e.what() << " (see --help)\n";
    return kExitUserError;
  }
  return std::nullopt;
}

}  // namespace hgpt
