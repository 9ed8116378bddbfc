// block_kinds.cpp — the registry's names and symbols (block_kinds.h), without LibTorch.
#include "hgpt/model/block_kinds.h"

#include <algorithm>
#include <cctype>

namespace hgpt::model {

namespace {
std::string lower(std::string s) {
  for (auto& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

std::vector<std::string> spellings(const char* name, char symbol, const std::string& aliases) {
  std::vector<std::string> out{lower(std::string(1, symbol)), name};
  for (size_t start = 0; start < aliases.size();) {
    const size_t bar = std::min(aliases.find('|', start), aliases.size());
    out.push_back(aliases.substr(start, bar - start));
    start = bar + 1;
  }
  return out;
}

// The list entry the docs and messages show: the first alias in capitals ("M2"), else the symbol.
std::string short_name(char symbol, const std::string& aliases) {
  if (aliases.empty()) return std::string(1, symbol);
  std::string first = aliases.substr(0, aliases.find('|'));
  for (auto& ch : first) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  return first;
}
}  // namespace

const std::vector<BlockKindInfo>& block_kinds() {
  static const std::vector<BlockKindInfo> kinds = {
#define HGPT_BLOCK_KIND(id, symbol, aliases, group) \
  {#id, symbol, short_name(symbol, aliases), spellings(#id, symbol, aliases), ActivationCheckpointing::group},
#include "hgpt/model/block_kinds.def"
  };
  return kinds;
}

const BlockKindInfo* find_block_kind(char symbol) {
  for (const auto& kind : block_kinds())
    if (kind.symbol == symbol) return &kind;
  return nullptr;
}

const BlockKindInfo* find_block_kind(const std::string& entry) {
  const std::string wanted = lower(entry);
  for (const auto& kind : block_kinds()) {
    if (std::find(kind.spellings.begin(), kind.spellings.end(), wanted) != kind.spellings.end()) return &kind;
  }
  return nullptr;
}

}  // namespace hgpt::model
