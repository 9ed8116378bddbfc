// tool_run.h — runs one of the built tokenizer tools (build/tok_train, build/tokenize) as a user
// would, for the tokenizer tests: its exit code and what it wrote to stderr.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <string>

#include "tests/support/files.h"

namespace hgpt::testing {

struct ToolRun {
  int exit_code;
  std::string stderr_text;
};

// Runs build/<tool> with `args` (a shell word list); stderr is captured in a file of `dir`.
inline ToolRun run_tool(const TempDir& dir, const std::string& tool, const std::string& args) {
  const std::string path = std::string(HGPT_BUILD_DIR) + "/" + tool;
  if (file_size(path) < 0) ADD_FAILURE() << path << " is missing: build the `" << tool << "` target first";
  const std::string err = dir.file(tool + ".stderr");
  const int status = std::system((path + " " + args + " > /dev/null 2> " + err).c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_text(err)};
}

}  // namespace hgpt::testing
