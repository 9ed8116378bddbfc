// block_registry.cpp — pattern symbol → the kind's factory and sizes (block_registry.h).
#include "hgpt/model/block_registry.h"

#include "hgpt/model/block.h"

#include <c10/util/Exception.h>

namespace hgpt::model {

namespace {
struct KindEntry {
  char symbol;
  std::shared_ptr<BlockImpl> (*make)(const ModelConfig&);
  BlockSizes (*sizes)(const ModelConfig&, bool);
};

const KindEntry& entry(char symbol) {
  static const KindEntry entries[] = {
#define HGPT_BLOCK_KIND(id, symbol, aliases, group) {symbol, &make_##id##_block, &id##_block_sizes},
#include "hgpt/model/block_kinds.def"
  };
  for (const auto& e : entries)
    if (e.symbol == symbol) return e;
  TORCH_CHECK(false, "no block kind has the pattern symbol '", symbol, "'; validate the config first");
}
}  // namespace

std::shared_ptr<BlockImpl> make_block(char symbol, const ModelConfig& config) { return entry(symbol).make(config); }

BlockSizes block_sizes(char symbol, const ModelConfig& config, bool cuda) { return entry(symbol).sizes(config, cuda); }

}  // namespace hgpt::model
