// test_shards.cpp — llm.c token shards: round trips in both widths, and every malformed case
// throws a UserError naming the file.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <random>

#include "hgpt/data/shards.h"
#include "hgpt/errors.h"
#include "tests/support/files.h"

using namespace hgpt::data;

namespace {

using hgpt::testing::basename_of;
using hgpt::testing::file_size;
using hgpt::testing::TempDir;

// Writes raw bytes: a header (magic, version, count) plus `payload_bytes` zero bytes; independent of write_shard.
void write_raw(const std::string& path, int32_t magic, int32_t version, int32_t count, size_t payload_bytes) {
  std::vector<int32_t> header(256, 0);
  header[0] = magic;
  header[1] = version;
  header[2] = count;
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(header.data()), 1024);
  std::vector<char> zeros(payload_bytes, 0);
  f.write(zeros.data(), static_cast<std::streamsize>(zeros.size()));
}

void expect_user_error_naming(const std::string& path, const std::string& fragment) {
  try {
    TokenShard shard(path);
    FAIL() << "expected UserError for " << path;
  } catch (const hgpt::UserError& e) {
    EXPECT_NE(std::string(e.what()).find(basename_of(path)), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
  EXPECT_THROW(read_shard_header(path), hgpt::UserError);
}

}  // namespace

TEST(Shards, RoundTripUint16) {
  TempDir dir;
  std::vector<uint32_t> tokens;
  std::mt19937 rng(1);
  for (int i = 0; i < 1000; ++i) tokens.push_back(rng() % 65536);
  tokens.push_back(65535);
  const std::string p = dir.file("x_train_000001.bin");
  write_shard(p, tokens);
  EXPECT_EQ(file_size(p), 1024 + 2 * tokens.size());
  ShardHeader h = read_shard_header(p);
  EXPECT_EQ(h.num_tokens, static_cast<int64_t>(tokens.size()));
  EXPECT_EQ(h.token_bytes, 2);
  TokenShard s(p);
  ASSERT_EQ(s.size(), static_cast<int64_t>(tokens.size()));
  for (size_t i = 0; i < tokens.size(); ++i) ASSERT_EQ(s[i], tokens[i]) << i;
  std::vector<int64_t> out(10);
  s.read(5, 10, out.data());
  for (int i = 0; i < 10; ++i) EXPECT_EQ(out[i], static_cast<int64_t>(tokens[5 + i]));
  EXPECT_EQ(s.max_token(), 65535u);
  EXPECT_THROW(s.read(static_cast<int64_t>(tokens.size()) - 2, 3, out.data()), std::out_of_range);
}

TEST(Shards, RoundTripUint32AndMove) {
  TempDir dir;
  std::vector<uint32_t> tokens = {0, 1, 65536, 100000, 4000000000u, 7};
  const std::string p = dir.file("y_val_000000.bin");
  write_shard(p, tokens);  // a token >= 65536 forces uint32
  EXPECT_EQ(file_size(p), 1024 + 4 * tokens.size());
  EXPECT_EQ(read_shard_header(p).token_bytes, 4);
  TokenShard a(p);
  TokenShard s(std::move(a));
  ASSERT_EQ(s.size(), 6);
  for (size_t i = 0; i < tokens.size(); ++i) EXPECT_EQ(s[i], tokens[i]);
  std::vector<int64_t> out(6);
  s.read(0, 6, out.data());
  EXPECT_EQ(out[4], 4000000000LL);  // widened without sign trouble
  EXPECT_EQ(s.max_token(), 4000000000u);

  // force_uint32 on small tokens, and an empty shard.
  write_shard(dir.file("z_train_000002.bin"), {1, 2, 3}, /*force_uint32=*/true);
  EXPECT_EQ(read_shard_header(dir.file("z_train_000002.bin")).token_bytes, 4);
  EXPECT_EQ(TokenShard(dir.file("z_train_000002.bin"))[2], 3u);
  write_shard(dir.file("e_train_000003.bin"), {});
  EXPECT_EQ(TokenShard(dir.file("e_train_000003.bin")).size(), 0);
}

TEST(Shards, MatchesLlmcByteLayout) {
  // The header and payload bytes written by write_shard are exactly llm.c's: checked by reading the file raw.
  TempDir dir;
  const std::string p = dir.file("raw_train_000000.bin");
  write_shard(p, {258, 3});
  std::ifstream f(p, std::ios::binary);
  std::vector<int32_t> header(256);
  f.read(reinterpret_cast<char*>(header.data()), 1024);
  EXPECT_EQ(header[0], 20240520);
  EXPECT_EQ(header[1], 1);
  EXPECT_EQ(header[2], 2);
  uint16_t t[2];
  f.read(reinterpret_cast<char*>(t), 4);
  EXPECT_EQ(t[0], 258);
  EXPECT_EQ(t[1], 3);
}

TEST(Shards, BadFilesThrowUserErrorNamingTheFile) {
  TempDir dir;
  write_raw(dir.file("badmagic.bin"), 12345, 1, 4, 8);
  expect_user_error_naming(dir.file("badmagic.bin"), "magic");
  write_raw(dir.file("badversion.bin"), 20240520, 7, 4, 8);
  expect_user_error_naming(dir.file("badversion.bin"), "version");
  write_raw(dir.file("badversion32.bin"), 20240801, 1, 4, 16);
  expect_user_error_naming(dir.file("badversion32.bin"), "version");
  write_raw(dir.file("truncated.bin"), 20240520, 1, 4, 6);
  expect_user_error_naming(dir.file("truncated.bin"), "size mismatch");
  write_raw(dir.file("oversized.bin"), 20240801, 7, 4, 20);
  expect_user_error_naming(dir.file("oversized.bin"), "size mismatch");
  { std::ofstream(dir.file("short.bin")) << "tiny"; }
  expect_user_error_naming(dir.file("short.bin"), "header");
  expect_user_error_naming(dir.file("missing.bin"), "cannot open");
}

TEST(Shards, ListShardsSplitsValAndTrain) {
  TempDir dir;
  for (const char* n : {"d_train_000002.bin", "d_val_000000.bin", "d_train_000001.bin", "notes.txt"})
    std::ofstream(dir.file(n)) << "x";
  auto train = list_shards(dir.path(), false);
  auto val = list_shards(dir.path(), true);
  ASSERT_EQ(train.size(), 2u);
  EXPECT_EQ(basename_of(train[0]), "d_train_000001.bin");
  EXPECT_EQ(basename_of(train[1]), "d_train_000002.bin");
  ASSERT_EQ(val.size(), 1u);
  EXPECT_EQ(basename_of(val[0]), "d_val_000000.bin");

  TempDir empty_holder;  // a directory with no shard of either kind
  ::mkdir(empty_holder.file("sub").c_str(), 0755);
  try {
    list_shards(empty_holder.file("sub"), true);
    FAIL();
  } catch (const hgpt::UserError& e) {
    EXPECT_NE(std::string(e.what()).find("sub"), std::string::npos);
  }
  const std::string missing = dir.file("no_such_dir");
  try {
    list_shards(missing, false);
    FAIL();
  } catch (const hgpt::UserError& e) {
    EXPECT_NE(std::string(e.what()).find("no_such_dir"), std::string::npos);
  }
}
