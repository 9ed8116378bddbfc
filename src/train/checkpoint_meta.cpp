// checkpoint_meta.cpp — reading meta_<step>.json strictly: a damaged or hand-edited file gives one
// error naming the file and the key, never a JSON library exception.
#include "hgpt/train/checkpoint_meta.h"

#include "hgpt/errors.h"
#include "hgpt/files.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>

namespace hgpt::train {
namespace {

[[noreturn]] void bad_meta(const std::string& path, const std::string& what) {
  throw UserError("checkpoint meta file '" + path + "': " + what +
                  "; the checkpoint is damaged: delete this meta file to resume from the one before");
}

// The value of `key` in `object`, which must be there.
const nlohmann::json& need(const nlohmann::json& object, const char* key, const std::string& path,
                           const std::string& where = "") {
  if (!object.contains(key)) bad_meta(path, "key '" + where + key + "' is missing");
  return object[key];
}

// An integer in [low, high] (JSON integers only: 1.5 or "3" are refused).
int64_t need_int(const nlohmann::json& v, const std::string& key, const std::string& path, int64_t low, int64_t high) {
  const bool integer = v.is_number_integer() && !(v.is_number_unsigned() && v.get<uint64_t>() > INT64_MAX);
  if (!integer || v.get<int64_t>() < low || v.get<int64_t>() > high) {
    bad_meta(path, "key '" + key + "' must be an integer in " + std::to_string(low) + ".." + std::to_string(high) +
                       ", got " + v.dump());
  }
  return v.get<int64_t>();
}

}  // namespace

CheckpointMeta parse_checkpoint_meta(const nlohmann::json& meta, const std::string& path, int64_t file_step) {
  if (!meta.is_object()) bad_meta(path, "the top level must be a JSON object");
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  CheckpointMeta out;
  out.step = need_int(need(meta, "step", path), "step", path, 0, kMax);
  if (out.step != file_step)
    bad_meta(path,
             "key 'step' is " + std::to_string(out.step) + " but the file name says " + std::to_string(file_step));
  // Files from before world_size was recorded were written by one rank.
  out.world_size =
      meta.contains("world_size") ? static_cast<int>(need_int(meta["world_size"], "world_size", path, 1, 1 << 20)) : 1;
  out.config = need(meta, "config", path);
  if (!out.config.is_object()) bad_meta(path, "key 'config' must be an object of config keys");
  out.val = meta.contains("val") ? meta["val"] : nlohmann::json();
  if (!out.val.is_null() && !out.val.is_object()) bad_meta(path, "key 'val' must be an object or null");
  const auto& loader = need(meta, "loader", path);
  if (!loader.is_object()) bad_meta(path, "key 'loader' must be an object");
  // 2^40 micro-steps is beyond any run, and keeps the loader's row arithmetic far from overflow.
  out.train_position =
      need_int(need(loader, "train_position", path, "loader."), "loader.train_position", path, 0, int64_t{1} << 40);
  const auto& ema = need(meta, "loss_ema", path);
  if (!ema.is_object()) bad_meta(path, "key 'loss_ema' must be an object");
  const auto& ema_value = need(ema, "ema", path, "loss_ema.");
  if (!ema_value.is_number()) bad_meta(path, "key 'loss_ema.ema' must be a number, got " + ema_value.dump());
  out.loss_ema = ema_value.get<double>();
  out.loss_ema_count = need_int(need(ema, "count", path, "loss_ema."), "loss_ema.count", path, 0, kMax);
  const auto& rng = need(meta, "rng_state_cpu", path);
  if (!rng.is_string()) bad_meta(path, "key 'rng_state_cpu' must be a hex string");
  try {
    out.rng_state_cpu = hex_decode(rng.get<std::string>());
  } catch (const UserError& e) {
    bad_meta(path, std::string("key 'rng_state_cpu': ") + e.what());
  }
  if (meta.contains("model_checksum")) {
    const auto& checksum = meta["model_checksum"];
    const bool hex16 = checksum.is_string() && checksum.get<std::string>().size() == 16 &&
                       checksum.get<std::string>().find_first_not_of("0123456789abcdef") == std::string::npos;
    if (!hex16) bad_meta(path, "key 'model_checksum' must be 16 lowercase hex digits, got " + checksum.dump());
    out.model_checksum = checksum.get<std::string>();
  }
  return out;
}

CheckpointMeta read_checkpoint_meta(const std::string& dir, int64_t step) {
  const std::string path = path_join(dir, meta_file_name(step));
  if (is_directory(path)) throw UserError("'" + path + "' is a folder, not a checkpoint's meta file: remove it");
  std::ifstream in(path);
  if (!in) throw UserError("cannot read checkpoint meta file '" + path + "': " + std::strerror(errno));
  nlohmann::json meta;
  try {
    meta = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    bad_meta(path, std::string("not valid JSON (") + e.what() + ")");
  }
  return parse_checkpoint_meta(meta, path, step);
}

std::string hex_encode(const std::string& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(2 * bytes.size());
  for (unsigned char b : bytes) out += digits[b >> 4], out += digits[b & 15];
  return out;
}

std::string hex_decode(const std::string& hex) {
  if (hex.size() % 2 != 0) throw UserError("odd number of hex digits (" + std::to_string(hex.size()) + ")");
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out(hex.size() / 2, '\0');
  for (size_t i = 0; i < out.size(); ++i) {
    const int high = nibble(hex[2 * i]), low = nibble(hex[2 * i + 1]);
    if (high < 0 || low < 0) throw UserError("character " + std::to_string(2 * i) + " is not a hex digit");
    out[i] = static_cast<char>(high << 4 | low);
  }
  return out;
}

}  // namespace hgpt::train
