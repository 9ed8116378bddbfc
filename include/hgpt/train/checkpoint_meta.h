// checkpoint_meta.h — meta_<step>.json, the file that marks a checkpoint complete (docs/FORMATS.md),
// read and checked in full before resume touches anything. No LibTorch here, so the reader can be
// fuzzed on its own.
#pragma once

#include <nlohmann/json.hpp>
#include "hgpt/train/checkpoint_files.h"

#include <cstdint>
#include <optional>
#include <string>

namespace hgpt::train {

struct CheckpointMeta {
  int64_t step = 0;
  int world_size = 1;
  nlohmann::json config;       // the resolved config the checkpoint was trained with (an object)
  nlohmann::json val;          // the last validation record (an object, or null before any)
  int64_t train_position = 0;  // the training loader's position
  double loss_ema = 0.0;       // LossEma's state
  int64_t loss_ema_count = 0;
  std::string rng_state_cpu;   // the CPU generator's state, raw bytes
  std::string model_checksum;  // fnv1a64_hex of the model file; empty in files from before it was kept
};

// Checks every key (present, of the right type, in range) and that `step` matches the file name's.
// Throws hgpt::UserError naming `path` and the key.
CheckpointMeta parse_checkpoint_meta(const nlohmann::json& meta, const std::string& path, int64_t file_step);
// Reads and parses <dir>/meta_<step>.json.
CheckpointMeta read_checkpoint_meta(const std::string& dir, int64_t step);

// Bytes ↔ lowercase hex, for binary state inside JSON; hex_decode throws UserError on odd length or
// a non-hex character.
std::string hex_encode(const std::string& bytes);
std::string hex_decode(const std::string& hex);

}  // namespace hgpt::train
