// test_metrics_file.cpp — metrics.jsonl stays one clean run: opening it for a run that starts at
// step k keeps the training records of steps ≤ k and the evaluations before k, drops a torn last
// line (and anything after it), and a fresh run (k = 0) starts it empty. A failed write (full disk)
// is a UserError naming the file, not a silently lost record.
#include "hgpt/errors.h"
#include "hgpt/train/metrics.h"
#include "tests/train/train_test_util.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

namespace hgpt::testing {
namespace {

using Json = nlohmann::json;

// The records of a run that evaluated at steps 0 and 2 and trained steps 1..4, then a torn line.
const std::string kRun = R"({"step":0,"val_loss":5.0})"
                         "\n"
                         R"({"step":1,"loss":4.0})"
                         "\n"
                         R"({"step":2,"loss":3.5})"
                         "\n"
                         R"({"step":2,"val_loss":3.6})"
                         "\n"
                         R"({"step":3,"loss":3.0})"
                         "\n"
                         R"({"step":4,"loss":2.5})"
                         "\n"
                         R"({"step":5,"lo)";

std::string prefix(int64_t start_step) { return kRun.substr(0, train::metrics_prefix_to_keep(kRun, start_step)); }

TEST(MetricsFile, KeepsTheRecordsBeforeTheResumeStep) {
  EXPECT_EQ(prefix(0), "");
  EXPECT_EQ(prefix(1), R"({"step":0,"val_loss":5.0})"
                       "\n"
                       R"({"step":1,"loss":4.0})"
                       "\n");
  // Resuming at 2 evaluates step 2 again: its old evaluation goes, its training record stays.
  EXPECT_EQ(prefix(2), R"({"step":0,"val_loss":5.0})"
                       "\n"
                       R"({"step":1,"loss":4.0})"
                       "\n"
                       R"({"step":2,"loss":3.5})"
                       "\n");
  EXPECT_EQ(prefix(3).size(), kRun.find(R"({"step":4)"));
  // Everything complete, but never the torn line.
  EXPECT_EQ(prefix(100).size(), kRun.find(R"({"step":5)"));
}

TEST(MetricsFile, AGarbageLineEndsWhatIsKept) {
  const std::string text = R"({"step":1,"loss":4.0})"
                           "\n"
                           "not json\n"
                           R"({"step":2,"loss":3.5})"
                           "\n";
  EXPECT_EQ(train::metrics_prefix_to_keep(text, 10), text.find("not json"));
}

TEST(MetricsFile, OpenCutsTheFileAndAppendsAfterItAndAFreshRunStartsEmpty) {
  TempDir dir;
  const std::string path = dir.file("metrics.jsonl");
  std::ofstream(path) << kRun;
  {
    train::MetricsWriter writer;
    writer.open(path, 2);
    writer.write({{"step", 2}, {"val_loss", 3.6}});
    writer.write({{"step", 3}, {"loss", 3.0}});
  }
  const auto records = read_jsonl(path);
  ASSERT_EQ(records.size(), 5u) << read_text(path);
  EXPECT_EQ(records[3], (Json{{"step", 2}, {"val_loss", 3.6}}));
  EXPECT_EQ(records[4], (Json{{"step", 3}, {"loss", 3.0}}));
  train::MetricsWriter fresh;
  fresh.open(path, 0);
  EXPECT_EQ(read_text(path), "");
}

TEST(MetricsFile, AFailedWriteIsAUserError) {
  if (::access("/dev/full", W_OK) != 0) GTEST_SKIP() << "no writable /dev/full on this machine";
  train::MetricsWriter writer;
  writer.open("/dev/full", 0);  // every write fails with ENOSPC, as on a full disk
  try {
    writer.write({{"step", 1}, {"loss", 1.0}});
    ADD_FAILURE() << "a failed write went unnoticed";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("/dev/full"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("No space left"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace hgpt::testing
