// test_checkpoint_meta.cpp — the meta_*.json reader: a complete file parses; each missing key,
// wrong type, out-of-range value and malformed hex is one UserError naming the file and the key;
// step numbers in file names that overflow int64 are named errors, not std::out_of_range.
#include "hgpt/errors.h"
#include "hgpt/train/checkpoint_meta.h"
#include "tests/train/train_test_util.h"

#include <gtest/gtest.h>

#include <fstream>

namespace hgpt::testing {
namespace {

using Json = nlohmann::json;

Json complete_meta() {
  return {{"step", 4},
          {"world_size", 1},
          {"config", {{"depth", 2}}},
          {"val", {{"val_loss", 4.5}}},
          {"loader", {{"train_position", 16}}},
          {"loss_ema", {{"ema", 0.25}, {"count", 4}}},
          {"rng_state_cpu", "00ff10"}};
}

// complete_meta() with `patch` merged over it (RFC 7386).
Json patched(const Json& patch) {
  Json meta = complete_meta();
  meta.merge_patch(patch);
  return meta;
}

// The UserError message of parsing `meta` as meta_000004.json.
std::string parse_error(const Json& meta) {
  try {
    train::parse_checkpoint_meta(meta, "out/d2/meta_000004.json", 4);
  } catch (const UserError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a UserError for " << meta.dump();
  return "";
}

TEST(CheckpointMeta, CompleteFileParses) {
  const auto m = train::parse_checkpoint_meta(complete_meta(), "meta_000004.json", 4);
  EXPECT_EQ(m.step, 4);
  EXPECT_EQ(m.world_size, 1);
  EXPECT_EQ(m.train_position, 16);
  EXPECT_EQ(m.loss_ema, 0.25);
  EXPECT_EQ(m.loss_ema_count, 4);
  EXPECT_EQ(m.rng_state_cpu, std::string("\x00\xff\x10", 3));
  EXPECT_EQ(m.config["depth"], 2);
}

TEST(CheckpointMeta, EachMissingKeyIsNamed) {
  for (const char* key : {"step", "config", "loader", "loss_ema", "rng_state_cpu"}) {
    Json meta = complete_meta();
    meta.erase(key);
    const std::string msg = parse_error(meta);
    EXPECT_NE(msg.find("meta_000004.json"), std::string::npos) << msg;
    EXPECT_NE(msg.find(std::string("'") + key + "'"), std::string::npos) << msg;
  }
  Json meta = complete_meta();
  meta["loader"].erase("train_position");
  EXPECT_NE(parse_error(meta).find("'loader.train_position'"), std::string::npos);
  meta = complete_meta();
  meta["loss_ema"].erase("count");
  EXPECT_NE(parse_error(meta).find("'loss_ema.count'"), std::string::npos);
}

TEST(CheckpointMeta, WrongTypesAndRangesAreNamed) {
  const std::vector<std::pair<Json, std::string>> cases = {
      {Json::array(), "top level"},
      {patched({{"step", "4"}}), "'step'"},
      {patched({{"step", 5}}), "'step' is 5"},
      {patched({{"world_size", 0}}), "'world_size'"},
      {patched({{"config", "d2"}}), "'config'"},
      {patched({{"val", 3}}), "'val'"},
      {patched({{"loader", {{"train_position", -1}}}}), "'loader.train_position'"},
      {patched({{"loader", {{"train_position", 1.5}}}}), "'loader.train_position'"},
      {patched({{"loss_ema", {{"ema", "x"}}}}), "'loss_ema.ema'"},
      {patched({{"rng_state_cpu", 7}}), "'rng_state_cpu'"},
      {patched({{"rng_state_cpu", "abc"}}), "'rng_state_cpu'"},
      {patched({{"rng_state_cpu", "zz"}}), "'rng_state_cpu'"},
  };
  for (const auto& [meta, needle] : cases) {
    const std::string msg = parse_error(meta);
    EXPECT_NE(msg.find(needle), std::string::npos) << "missing " << needle << " in: " << msg;
  }
}

TEST(CheckpointMeta, ReadsFromTheFolderAndNamesBadJson) {
  TempDir dir;
  std::ofstream(dir.file("meta_000004.json")) << complete_meta().dump();
  EXPECT_EQ(train::read_checkpoint_meta(dir.path(), 4).train_position, 16);
  std::ofstream(dir.file("meta_000005.json")) << "{\"step\": 5, ";
  try {
    train::read_checkpoint_meta(dir.path(), 5);
    ADD_FAILURE() << "a torn meta file was accepted";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("meta_000005.json"), std::string::npos) << e.what();
  }
}

TEST(CheckpointMeta, FileNameSteps) {
  EXPECT_EQ(train::meta_file_step("meta_000010.json"), 10);
  EXPECT_EQ(train::meta_file_step("meta_9223372036854775807.json"), INT64_MAX);
  EXPECT_FALSE(train::meta_file_step("meta_.json").has_value());
  EXPECT_FALSE(train::meta_file_step("meta_00001x.json").has_value());
  EXPECT_FALSE(train::meta_file_step("model_000010.pt").has_value());
  EXPECT_FALSE(train::meta_file_step("meta_000010.json.tmp").has_value());
  try {
    train::meta_file_step("meta_99999999999999999999.json");
    ADD_FAILURE() << "an overflowing step was accepted";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("meta_99999999999999999999.json"), std::string::npos) << e.what();
  }
}

TEST(CheckpointMeta, HexRoundTrips) {
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  EXPECT_EQ(train::hex_decode(train::hex_encode(all)), all);
  EXPECT_EQ(train::hex_decode("ABcd"), "\xab\xcd");
}

}  // namespace
}  // namespace hgpt::testing
