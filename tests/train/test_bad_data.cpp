// test_bad_data.cpp — base_train on token shards: each kind of bad data stops the run at start
// with exit 2 and a message naming the file (or folder); the same folder with good shards trains.
#include "hgpt/data/shards.h"
#include "tests/train/train_test_util.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <functional>

namespace hgpt::testing {
namespace {

std::vector<uint32_t> ramp_tokens(int64_t n, uint32_t vocab) {
  std::vector<uint32_t> t(n);
  for (int64_t i = 0; i < n; ++i) t[i] = static_cast<uint32_t>((i * 7 + 3) % vocab);
  return t;
}

// Overwrites the int32 at header slot `index` (0 magic, 1 version, 2 token count).
void patch_header(const std::string& path, int index, int32_t value) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  ASSERT_TRUE(f.good()) << path;
  f.seekp(index * 4);
  f.write(reinterpret_cast<const char*>(&value), 4);
}

void append_bytes(const std::string& path, int n) {
  std::ofstream f(path, std::ios::binary | std::ios::app);
  for (int i = 0; i < n; ++i) f.put('\0');
}

// A data folder with one good training and one good validation shard (uint16 tokens < 257).
struct ShardDir {
  TempDir dir;
  std::string train = dir.file("data_train_000000.bin");
  std::string val = dir.file("data_val_000000.bin");
  ShardDir() {
    data::write_shard(train, ramp_tokens(3000, 257));
    data::write_shard(val, ramp_tokens(1000, 257));
  }
};

ChildResult train_on(const std::string& data_dir, const std::string& out_dir) {
  return run_base_train({"--data=" + data_dir, "--num_iterations=1", "--out_dir=" + out_dir});
}

void expect_user_error_naming(const ChildResult& r, const std::string& name) {
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.output.find("error: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(name), std::string::npos) << "message should name " << name << ":\n" << r.output;
  EXPECT_EQ(r.output.find("step 00001"), std::string::npos) << "it trained before failing:\n" << r.output;
}

TEST(BadData, GoodShardsTrain) {  // the control: the folder layout itself is accepted
  ShardDir d;
  TempDir out;
  const auto r = train_on(d.dir.path(), out.path());
  EXPECT_TRUE(r.ok()) << r.describe();
  EXPECT_NE(r.output.find("step 00001"), std::string::npos) << r.output;
}

TEST(BadData, MissingDirectory) {
  TempDir out;
  const std::string missing = out.file("no_such_data_dir");
  expect_user_error_naming(train_on(missing, out.path()), missing);
}

TEST(BadData, BadMagic) {
  ShardDir d;
  patch_header(d.train, 0, 12345);
  TempDir out;
  expect_user_error_naming(train_on(d.dir.path(), out.path()), d.train);
}

TEST(BadData, BadVersion) {
  ShardDir d;
  patch_header(d.val, 1, 3);
  TempDir out;
  expect_user_error_naming(train_on(d.dir.path(), out.path()), d.val);
}

TEST(BadData, SizeDoesNotMatchHeader) {
  ShardDir d;
  append_bytes(d.train, 6);  // three uint16 tokens more than the header says
  TempDir out;
  expect_user_error_naming(train_on(d.dir.path(), out.path()), d.train);
}

TEST(BadData, HeaderCountLargerThanFile) {
  ShardDir d;
  patch_header(d.val, 2, 5000);  // the file holds 1000
  TempDir out;
  expect_user_error_naming(train_on(d.dir.path(), out.path()), d.val);
}

TEST(BadData, TokenIdAtLeastVocabSize) {
  ShardDir d;
  auto tokens = ramp_tokens(1000, 257);
  tokens[500] = 257;  // vocab_size is 257: ids 0..256
  data::write_shard(d.val, tokens);
  TempDir out;
  expect_user_error_naming(train_on(d.dir.path(), out.path()), d.val);
}

TEST(BadData, TokenIdAtLeastVocabSizeInUint32Shard) {
  ShardDir d;
  auto tokens = ramp_tokens(3000, 257);
  tokens[2999] = 70000;
  data::write_shard(d.train, tokens);  // stored as uint32 (a token >= 65536)
  TempDir out;
  expect_user_error_naming(train_on(d.dir.path(), out.path()), d.train);
}

// A *_train_*.bin entry that cannot be read is an error, never skipped (the run would silently
// train on less data than the folder promises).
TEST(BadData, DanglingSymlinkShard) {
  ShardDir d;
  const std::string link = d.dir.file("data_train_000001.bin");
  ASSERT_EQ(::symlink((d.dir.file("no_such_target.bin")).c_str(), link.c_str()), 0);
  TempDir out;
  expect_user_error_naming(train_on(d.dir.path(), out.path()), link);
}

TEST(BadData, LoopingSymlinkShard) {
  ShardDir d;
  const std::string link = d.dir.file("data_train_000001.bin");
  ASSERT_EQ(::symlink(link.c_str(), link.c_str()), 0);  // points at itself: ELOOP
  TempDir out;
  expect_user_error_naming(train_on(d.dir.path(), out.path()), link);
}

TEST(BadData, FolderNamedLikeAShard) {
  ShardDir d;
  const std::string folder = d.dir.file("data_train_000001.bin");
  ASSERT_EQ(::mkdir(folder.c_str(), 0755), 0);
  TempDir out;
  expect_user_error_naming(train_on(d.dir.path(), out.path()), folder);
}

}  // namespace
}  // namespace hgpt::testing
