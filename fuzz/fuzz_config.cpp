// fuzz_config.cpp — the config parser: a config file and `--key=value` overrides either load or
// give a UserError, and a loaded config survives its own round trip (to_json → config_from_json).
//
// Input: the config file's text, then NUL-separated overrides ("key=value", "--" stripped).
#include "fuzz/fuzz_util.h"
#include "hgpt/config.h"
#include "hgpt/errors.h"

#include <nlohmann/json.hpp>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hgpt;
  const auto parts = fuzz::split_at_nul(data, size);
  const std::string path = fuzz::scratch_file("config.json", parts[0]);
  const std::vector<std::string> overrides(parts.begin() + 1, parts.end());
  Config config;
  try {
    config = load_config(path, overrides);
  } catch (const UserError&) {
    return 0;
  }
  const nlohmann::json resolved = config.to_json();
  Config again;
  try {
    again = config_from_json(resolved);
  } catch (const UserError&) {
    fuzz::property_failed("a loaded config does not reload from its own to_json()");
  }
  if (again.to_json() != resolved) fuzz::property_failed("to_json() → config_from_json() changed the config");
  return 0;
}
