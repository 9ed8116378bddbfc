// fuzz_shard.cpp — token shards: any file either validates (header, size) and then reads in full,
// or gives a UserError; a valid shard's tokens survive write_shard → TokenShard unchanged.
//
// Input: the whole shard file.
#include "fuzz/fuzz_util.h"
#include "hgpt/data/shards.h"
#include "hgpt/errors.h"

#include <algorithm>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hgpt;
  const std::string path =
      fuzz::scratch_file("fuzz_train_000000.bin", std::string(reinterpret_cast<const char*>(data), size));
  std::vector<int64_t> tokens;
  try {
    const data::ShardHeader header = data::read_shard_header(path);
    const data::TokenShard shard(path);
    if (shard.size() != header.num_tokens || shard.token_bytes() != header.token_bytes)
      fuzz::property_failed("TokenShard disagrees with read_shard_header");
    tokens.resize(static_cast<size_t>(shard.size()));
    shard.read(0, shard.size(), tokens.data());
    const int64_t largest = tokens.empty() ? 0 : *std::max_element(tokens.begin(), tokens.end());
    if (shard.max_token() != largest) fuzz::property_failed("max_token() is not the largest token");
    if (data::list_shards(fuzz::scratch_dir(), /*validation=*/false) != std::vector<std::string>{path})
      fuzz::property_failed("list_shards does not list the one training shard");
  } catch (const UserError&) {
    return 0;
  }
  // Round trip through the writer (uint16 when every token fits, as the input may be either width).
  const std::vector<uint32_t> narrow(tokens.begin(), tokens.end());
  const std::string copy = fuzz::scratch_dir() + "/copy.shard";  // not *.bin: list_shards must see one
  data::write_shard(copy, narrow);
  const data::TokenShard reread(copy);
  std::vector<int64_t> again(static_cast<size_t>(reread.size()));
  reread.read(0, reread.size(), again.data());
  if (again != tokens) fuzz::property_failed("write_shard → TokenShard changed the tokens");
  return 0;
}
