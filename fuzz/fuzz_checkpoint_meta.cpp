// fuzz_checkpoint_meta.cpp — the checkpoint meta reader: any meta_000001.json either parses (every
// key present, typed and in range) or gives a UserError; the config inside it goes through the
// config parser the way resume uses it; any file name gives a step, nothing, or a UserError.
//
// Input: the meta file's text, optionally NUL and a file name to read a step from.
#include "fuzz/fuzz_util.h"
#include "hgpt/config.h"
#include "hgpt/errors.h"
#include "hgpt/train/checkpoint_meta.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hgpt;
  const auto parts = fuzz::split_at_nul(data, size);
  fuzz::scratch_file("meta_000001.json", parts[0]);
  try {
    const train::CheckpointMeta meta = train::read_checkpoint_meta(fuzz::scratch_dir(), 1);
    if (train::hex_decode(train::hex_encode(meta.rng_state_cpu)) != meta.rng_state_cpu)
      fuzz::property_failed("hex_encode → hex_decode changed the bytes");
    config_from_json(meta.config);
  } catch (const UserError&) {}
  if (parts.size() > 1) {
    try {
      train::meta_file_step(parts[1]);
    } catch (const UserError&) {}
  }
  return 0;
}
