// cli.h — how every tool parses its CLI11 command line: --help prints and exits 0, a bad flag
// prints "error: ... (see --help)" and exits 2 (a user error, like every other).
#pragma once

#include "hgpt/errors.h"

#include <CLI/CLI.hpp>

#include <cerrno>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>

namespace hgpt {

namespace detail {

// What CLI11 lets through that a user did not mean, as a message ("" when all is fine). Before
// parsing: "--name=" with nothing after it (CLI11 would take the next argument, often a file, as
// the value). After: integers that are not plain decimal ("0x10", " 5", "010", which CLI11 reads
// as octal) or do not fit (CLI11 clamps those to the largest value).
inline std::string empty_value_argument(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--") break;
    if (arg.size() > 3 && arg.compare(0, 2, "--") == 0 && arg.find('=') == arg.size() - 1)
      return arg + " has no value; write " + arg + "VALUE, or leave the option out for its default";
  }
  return "";
}

inline std::string unclear_integer(const CLI::App& app) {
  for (const CLI::Option* option : app.get_options()) {
    const std::string type = option->get_type_name();
    const bool is_unsigned = type.compare(0, 4, "UINT") == 0;
    if (type.compare(0, 3, "INT") != 0 && !is_unsigned) continue;
    for (const std::string& value : option->results()) {
      const size_t sign = !value.empty() && (value[0] == '-' || value[0] == '+') ? 1 : 0;
      const bool decimal = value.size() > sign && value.find_first_not_of("0123456789", sign) == std::string::npos;
      if (!decimal || (is_unsigned && value[0] == '-'))
        return option->get_name() + " needs a whole decimal number, got '" + value + "'";
      // CLI11 reads a leading 0 as octal (010 = 8): refused, naming the decimal number meant.
      const size_t first = value.find_first_not_of('0', sign);
      if (value[sign] == '0' && value.size() > sign + 1)
        return option->get_name() + " " + value + " has a leading zero, which this parser reads as octal; write " +
               value.substr(0, sign) + (first == std::string::npos ? "0" : value.substr(first));
      errno = 0;
      if (is_unsigned) {
        (void)std::strtoull(value.c_str(), nullptr, 10);
      } else {
        (void)std::strtoll(value.c_str(), nullptr, 10);
      }
      if (errno == ERANGE) return option->get_name() + " " + value + " is out of range";
    }
  }
  return "";
}

}  // namespace detail

// Parses argv into `app`; returns the exit code to stop with, or nothing to go on.
inline std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv) {
  auto refuse = [](const std::string& why) {
    std::cerr << "error: " << why << " (see --help)\n";
    return kExitUserError;
  };
  if (const std::string why = detail::empty_value_argument(argc, argv); !why.empty()) return refuse(why);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return refuse(e.what());
  }
  if (const std::string why = detail::unclear_integer(app); !why.empty()) return refuse(why);
  return std::nullopt;
}

}  // namespace hgpt
