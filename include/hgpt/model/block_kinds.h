// block_kinds.h — what config validation needs to know of the block kinds (their names, pattern
// symbols and checkpointing group), read from the registry (model/block_kinds.def). Free of
// LibTorch, so the config code it serves builds (and is fuzzed) without it.
#pragma once

#include "hgpt/config.h"

#include <string>
#include <vector>

namespace hgpt::model {

struct BlockKindInfo {
  std::string name;                    // "transformer"
  char symbol;                         // 'T'
  std::string short_name;              // the list entry shown in docs and messages: "T", "M2"
  std::vector<std::string> spellings;  // accepted block_pattern list entries, lower case: "t", "transformer", ...
  ActivationCheckpointing checkpoint_group;
};

// Every kind, in registry order.
const std::vector<BlockKindInfo>& block_kinds();
// The kind a pattern symbol stands for, or nullptr.
const BlockKindInfo* find_block_kind(char symbol);
// The kind a block_pattern list entry names (any case), or nullptr.
const BlockKindInfo* find_block_kind(const std::string& entry);

}  // namespace hgpt::model
