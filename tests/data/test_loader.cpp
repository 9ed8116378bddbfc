// test_loader.cpp — the loader: synthetic rows and answer marks, determinism, train/val apart,
// exact resume, data-parallel row split, shard windows against the flat stream, bad data errors,
// and exact-match scoring.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <set>

#include "hgpt/data/loader.h"
#include "hgpt/data/shards.h"
#include "hgpt/errors.h"
#include "tests/data/corpus_parse.h"
#include "tests/support/files.h"

namespace hgpt::data {
namespace {

// ---------------------------------------------------------------------------------------------
// Helpers

LoaderSpec synth_spec(int64_t B, int64_t T, const std::string& split = "train") {
  LoaderSpec s;
  s.data = "synthetic";
  s.split = split;
  s.batch_size = B;
  s.seq_len = T;
  s.vocab_size = kByteVocab;
  return s;
}

void expect_batches_equal(const Batch& a, const Batch& b) {
  EXPECT_TRUE(at::equal(a.inputs, b.inputs));
  EXPECT_TRUE(at::equal(a.targets, b.targets));
  ASSERT_EQ(a.answer_task.defined(), b.answer_task.defined());
  if (a.answer_task.defined()) {
    EXPECT_TRUE(at::equal(a.answer_task, b.answer_task));
    EXPECT_TRUE(at::equal(a.answer_span, b.answer_span));
  }
}

std::vector<int64_t> row_of(const at::Tensor& t, int64_t b) {
  const at::Tensor r = t[b].contiguous();
  return std::vector<int64_t>(r.data_ptr<int64_t>(), r.data_ptr<int64_t>() + r.numel());
}

using hgpt::testing::TempDir;

std::vector<uint32_t> random_tokens(int64_t n, uint32_t below, uint64_t seed) {
  std::vector<uint32_t> out(n);
  uint64_t x = seed * 2654435761u + 1;
  for (auto& t : out) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    t = static_cast<uint32_t>((x >> 33) % below);
  }
  return out;
}

void patch_int32(const std::string& path, long offset, int32_t value) {
  FILE* f = std::fopen(path.c_str(), "r+b");
  ASSERT_NE(f, nullptr);
  std::fseek(f, offset, SEEK_SET);
  std::fwrite(&value, 4, 1, f);
  std::fclose(f);
}

// Expects a UserError whose message contains every one of `needles`.
template <typename F>
void expect_user_error(F&& f, const std::vector<std::string>& needles) {
  try {
    f();
    ADD_FAILURE() << "no UserError thrown";
  } catch (const UserError& e) {
    for (const auto& n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what();
  }
}

// ---------------------------------------------------------------------------------------------
// Synthetic source

TEST(LoaderSynthetic, ShapesAndShiftedTargets) {
  Loader loader(synth_spec(3, 64));
  const Batch b = loader.next();
  for (const at::Tensor& t : {b.inputs, b.targets, b.answer_span}) {
    EXPECT_EQ(t.sizes(), at::IntArrayRef({3, 64}));
    EXPECT_EQ(t.scalar_type(), at::kLong);
  }
  EXPECT_EQ(b.answer_task.scalar_type(), at::kChar);
  EXPECT_TRUE(at::equal(b.inputs.slice(1, 1), b.targets.slice(1, 0, 63)));
  EXPECT_TRUE((b.inputs.select(1, 0) == kByteBos).all().item<bool>());  // every row starts a document
  EXPECT_LT(b.targets.max().item<int64_t>(), kByteVocab);
  EXPECT_GE(b.targets.min().item<int64_t>(), 0);
  EXPECT_EQ(loader.position(), 1);
}

TEST(LoaderSynthetic, RowsAreWholeDocumentsWithParsedAnswerMarks) {
  // Split each row at BOS; every document that ends inside the row must parse, and its marks (at
  // target positions, shifted by one) must be exactly the parsed answers, each span its own id.
  Loader loader(synth_spec(8, 256));
  int complete_docs = 0, spans = 0;
  for (int step = 0; step < 3; ++step) {
    const Batch b = loader.next();
    std::set<int64_t> span_ids_seen_in_batch;
    for (int64_t r = 0; r < 8; ++r) {
      std::vector<int64_t> tokens = row_of(b.inputs, r);
      tokens.push_back(b.targets[r][255].item<int64_t>());
      const std::vector<int64_t> task = row_of(b.answer_task.to(at::kLong), r);
      const std::vector<int64_t> span = row_of(b.answer_span, r);
      size_t start = 0;
      while (start < tokens.size()) {
        ASSERT_EQ(tokens[start], kByteBos);
        size_t end = start + 1;
        while (end < tokens.size() && tokens[end] != kByteBos) ++end;
        std::string text;
        for (size_t k = start + 1; k < end; ++k) text += static_cast<char>(tokens[k]);
        if (end < tokens.size()) {  // complete document
          const corpus::ParsedDoc parsed = corpus::parse_document(text);
          ASSERT_EQ(parsed.error, "") << text;
          ++complete_docs;
          std::vector<int64_t> want_task(end - start, 0);
          for (const auto& s : parsed.spans) {
            const int64_t id = span[start + s.front()];  // token start+1+pos is target start+pos
            EXPECT_GE(id, 0) << text;
            EXPECT_TRUE(span_ids_seen_in_batch.insert(id).second) << "span id reused: " << text;
            for (int pos : s) {
              want_task[pos + 1] = static_cast<int64_t>(parsed.task);
              EXPECT_EQ(span[start + pos], id) << text;
            }
            ++spans;
          }
          for (size_t k = start + 1; k < end; ++k) {
            EXPECT_EQ(task[k - 1], want_task[k - start]) << text;
            if (want_task[k - start] == 0) EXPECT_EQ(span[k - 1], -1) << text;
          }
        }
        start = end;
      }
    }
  }
  EXPECT_GT(complete_docs, 40);
  EXPECT_GT(spans, 40);
}

TEST(LoaderSynthetic, AnswerSpansCutByTheRowEndAreDropped) {
  // Rows do not depend on T beyond the cut: a short row is a prefix of the long row, and its marks
  // are the long row's marks minus any span that continues past the short row's last target.
  const int64_t Tl = 200, B = 64;
  Loader longer(synth_spec(B, Tl));
  const Batch l = longer.next();
  int dropped = 0, kept = 0;
  for (int64_t Ts = 30; Ts < 70; ++Ts) {
    Loader shorter(synth_spec(B, Ts));
    const Batch s = shorter.next();
    ASSERT_TRUE(at::equal(s.inputs, l.inputs.slice(1, 0, Ts)));
    for (int64_t r = 0; r < B; ++r) {
      const std::vector<int64_t> ls = row_of(l.answer_span, r), ss = row_of(s.answer_span, r);
      const std::vector<int64_t> lt = row_of(l.answer_task.to(at::kLong), r);
      const std::vector<int64_t> st = row_of(s.answer_task.to(at::kLong), r);
      for (int64_t t = 0; t < Ts; ++t) {
        const bool cut = ls[t] >= 0 && ls[Ts] == ls[t];  // the span goes on past the short row
        if (ls[t] < 0 || cut) {
          ASSERT_EQ(ss[t], -1) << "Ts " << Ts << " row " << r << " t " << t;
          ASSERT_EQ(st[t], 0);
          dropped += cut;
        } else {
          ASSERT_GE(ss[t], 0) << "Ts " << Ts << " row " << r << " t " << t;
          ASSERT_EQ(st[t], lt[t]);
          ++kept;
        }
      }
    }
  }
  EXPECT_GT(dropped, 0);  // the case did occur
  EXPECT_GT(kept, 1000);
}

TEST(LoaderSynthetic, DeterministicAndSeeded) {
  Loader a(synth_spec(4, 128)), b(synth_spec(4, 128));
  LoaderSpec other = synth_spec(4, 128);
  other.seed = 43;
  Loader c(other);
  for (int i = 0; i < 3; ++i) {
    const Batch ba = a.next(), bb = b.next(), bc = c.next();
    expect_batches_equal(ba, bb);
    EXPECT_FALSE(at::equal(ba.inputs, bc.inputs));
  }
}

TEST(LoaderSynthetic, TrainAndValRowsDiffer) {
  Loader train(synth_spec(16, 128, "train")), val(synth_spec(16, 128, "val"));
  std::set<std::vector<int64_t>> train_rows;
  for (int i = 0; i < 4; ++i) {
    const Batch b = train.next();
    for (int64_t r = 0; r < 16; ++r) train_rows.insert(row_of(b.inputs, r));
  }
  for (int i = 0; i < 4; ++i) {
    const Batch b = val.next();
    for (int64_t r = 0; r < 16; ++r) EXPECT_EQ(train_rows.count(row_of(b.inputs, r)), 0u);
  }
  EXPECT_EQ(train_rows.size(), 64u);  // rows within a split differ too
}

TEST(LoaderSynthetic, SetPositionResumesExactly) {
  Loader full(synth_spec(2, 64));
  std::vector<Batch> batches;
  for (int i = 0; i < 5; ++i) batches.push_back(full.next());
  EXPECT_EQ(full.position(), 5);
  Loader resumed(synth_spec(2, 64));
  resumed.set_position(3);
  expect_batches_equal(resumed.next(), batches[3]);
  expect_batches_equal(resumed.next(), batches[4]);
  EXPECT_EQ(resumed.position(), 5);
  resumed.set_position(0);
  expect_batches_equal(resumed.next(), batches[0]);
  EXPECT_THROW(resumed.set_position(-1), UserError);
}

TEST(LoaderSynthetic, TwoRanksReadTheRowsOfTwoMicroSteps) {
  // Per optimizer step: ranks 0 and 1 of 2 with B rows == one rank with 2 micro-steps of B rows.
  Loader single(synth_spec(3, 64));
  LoaderSpec s0 = synth_spec(3, 64), s1 = synth_spec(3, 64);
  s0.world_size = s1.world_size = 2;
  s1.rank = 1;
  Loader rank0(s0), rank1(s1);
  for (int step = 0; step < 3; ++step) {
    const Batch m0 = single.next(), m1 = single.next();
    const Batch r0 = rank0.next(), r1 = rank1.next();
    // Row ids are global: the concatenated answer spans differ only by the batch-local numbering.
    EXPECT_TRUE(at::equal(at::cat({m0.inputs, m1.inputs}), at::cat({r0.inputs, r1.inputs})));
    EXPECT_TRUE(at::equal(at::cat({m0.targets, m1.targets}), at::cat({r0.targets, r1.targets})));
    EXPECT_TRUE(at::equal(at::cat({m0.answer_task, m1.answer_task}), at::cat({r0.answer_task, r1.answer_task})));
  }
  EXPECT_EQ(rank0.position(), 3);
  EXPECT_EQ(single.position(), 6);
}

TEST(LoaderSynthetic, RejectsSmallVocabAndBadSpecs) {
  LoaderSpec s = synth_spec(2, 32);
  s.vocab_size = 256;
  expect_user_error([&] { Loader l(s); }, {"vocab_size", "257", "256"});
  s = synth_spec(2, 32, "test");
  expect_user_error([&] { Loader l(s); }, {"test"});
  s = synth_spec(0, 32);
  EXPECT_THROW(Loader{s}, UserError);
  s = synth_spec(2, 32);
  s.rank = 2;
  s.world_size = 2;
  EXPECT_THROW(Loader{s}, UserError);
}

// ---------------------------------------------------------------------------------------------
// Shard source

TEST(LoaderShards, WindowsFollowTheSortedStreamAcrossEpochs) {
  TempDir dir;
  // Written out of order: the loader must follow sorted names. Mixed uint16/uint32 files.
  const auto t1 = random_tokens(37, 300, 1), t0 = random_tokens(100, 300, 2), t2 = random_tokens(250, 300, 3);
  const auto val = random_tokens(80, 300, 4);
  write_shard(dir.file("data_train_000001.bin"), t1, /*force_uint32=*/true);
  write_shard(dir.file("data_train_000000.bin"), t0);
  write_shard(dir.file("data_train_000002.bin"), t2);
  write_shard(dir.file("data_val_000000.bin"), val);
  std::vector<int64_t> stream;
  for (const auto* part : {&t0, &t1, &t2}) stream.insert(stream.end(), part->begin(), part->end());

  const int64_t B = 4, T = 16, N = static_cast<int64_t>(stream.size());
  LoaderSpec spec{dir.path(), "train", B, T, 300};
  Loader loader(spec);
  EXPECT_FALSE(loader.synthetic());
  EXPECT_EQ(loader.stream_tokens(), N);
  const int64_t E = (N - 1) / T;
  EXPECT_EQ(loader.windows_per_epoch(), E);
  const int64_t steps = (E / B) * 2 + 2;  // past two epochs
  for (int64_t p = 0; p < steps; ++p) {
    const Batch b = loader.next();
    EXPECT_FALSE(b.answer_task.defined());
    for (int64_t r = 0; r < B; ++r) {
      const int64_t start = ((p * B + r) % E) * T;
      ASSERT_LE(start + T + 1, N);
      const std::vector<int64_t> want(stream.begin() + start, stream.begin() + start + T + 1);
      EXPECT_EQ(row_of(b.inputs, r), std::vector<int64_t>(want.begin(), want.end() - 1)) << "p " << p << " r " << r;
      EXPECT_EQ(row_of(b.targets, r), std::vector<int64_t>(want.begin() + 1, want.end()));
    }
  }

  // Validation reads only the validation shard.
  LoaderSpec vspec = spec;
  vspec.split = "val";
  Loader vloader(vspec);
  EXPECT_EQ(vloader.stream_tokens(), 80);
  const Batch vb = vloader.next();
  EXPECT_EQ(row_of(vb.inputs, 1), std::vector<int64_t>(val.begin() + T, val.begin() + 2 * T));

  // Resume and the data-parallel split hold for shards too.
  Loader resumed(spec);
  resumed.set_position(2);
  Loader again(spec);
  again.next();
  again.next();
  expect_batches_equal(resumed.next(), again.next());
  LoaderSpec r1 = spec;
  r1.world_size = 2;
  r1.rank = 1;
  LoaderSpec half = spec;
  Loader rank1(r1), single(half);
  single.next();
  expect_batches_equal(rank1.next(), single.next());
}

TEST(LoaderShards, BadDataNamesTheFile) {
  TempDir dir;
  const std::string good = dir.file("x_train_000000.bin"), bad = dir.file("x_train_000001.bin");
  write_shard(good, random_tokens(64, 100, 5));
  LoaderSpec spec{dir.path(), "train", 2, 8, 100};

  write_shard(bad, random_tokens(64, 100, 6));
  patch_int32(bad, 0, 12345);  // magic
  expect_user_error([&] { Loader l(spec); }, {bad});

  write_shard(bad, random_tokens(64, 100, 6));
  patch_int32(bad, 4, 3);  // version
  expect_user_error([&] { Loader l(spec); }, {bad});

  write_shard(bad, random_tokens(64, 100, 6));
  patch_int32(bad, 8, 65);  // token count one more than the payload
  expect_user_error([&] { Loader l(spec); }, {bad});

  write_shard(bad, {1, 2, 3, 150, 4});  // token id 150 >= vocab 100
  expect_user_error([&] { Loader l(spec); }, {bad, "150", "100"});

  write_shard(bad, {1, 2, 3, 99, 4});  // 99 < 100: fine now
  EXPECT_NO_THROW(Loader{spec});

  const std::string missing = dir.file("nope");
  spec.data = missing;
  expect_user_error([&] { Loader l(spec); }, {missing});

  TempDir empty;
  spec.data = empty.path();
  expect_user_error([&] { Loader l(spec); }, {empty.path()});

  spec.data = dir.path();  // no validation shards there
  spec.split = "val";
  expect_user_error([&] { Loader l(spec); }, {dir.path()});

  TempDir tiny;
  write_shard(tiny.file("t_train_000000.bin"), {1, 2, 3});
  LoaderSpec tspec{tiny.path(), "train", 1, 8, 100};
  expect_user_error([&] { Loader l(tspec); }, {tiny.path(), "3 tokens"});
}

// ---------------------------------------------------------------------------------------------
// Scoring

TEST(ScoreAnswers, HandBuiltBatch) {
  Batch b;
  b.targets = at::tensor({5, 6, 7, 8, 1, 2, 3, 4}, at::kLong).view({2, 4});
  b.answer_span = at::tensor({-1, 0, 0, -1, 1, -1, 2, 3}, at::kLong).view({2, 4});
  b.answer_task = at::tensor({0, 1, 1, 0, 2, 0, 3, 3}, at::kChar).view({2, 4});
  // span 0 (copy, 2 tokens): one token wrong → wrong; span 1 (induction): right; spans 2, 3
  // (recall): right, wrong. Position 0 and 5 are no answers: their mismatch does not count.
  const at::Tensor pred = at::tensor({9, 6, 0, 8, 1, 9, 3, 0}, at::kInt).view({2, 4});
  const TaskScore s = score_answers(b, pred);
  EXPECT_EQ(s.total, (std::array<int64_t, 3>{1, 1, 2}));
  EXPECT_EQ(s.correct, (std::array<int64_t, 3>{0, 1, 1}));
  EXPECT_DOUBLE_EQ(s.accuracy(0), 0.0);
  EXPECT_DOUBLE_EQ(s.accuracy(Task::Induction), 1.0);
  EXPECT_DOUBLE_EQ(s.accuracy(2), 0.5);

  TaskScore sum = s;
  sum.add(score_answers(b, b.targets));  // perfect predictions: every span right
  EXPECT_EQ(sum.total, (std::array<int64_t, 3>{2, 2, 4}));
  EXPECT_EQ(sum.correct, (std::array<int64_t, 3>{1, 2, 3}));
  EXPECT_DOUBLE_EQ(TaskScore{}.accuracy(1), 0.0);

  Batch shards_batch;
  shards_batch.targets = b.targets;
  EXPECT_EQ(score_answers(shards_batch, pred).total, (std::array<int64_t, 3>{0, 0, 0}));
}

TEST(ScoreAnswers, SyntheticBatchPerfectAndShifted) {
  Loader loader(synth_spec(8, 128));
  const Batch b = loader.next();
  const TaskScore perfect = score_answers(b, b.targets);
  const TaskScore wrong = score_answers(b, b.targets + 1);
  for (int k = 0; k < kNumTasks; ++k) {
    EXPECT_GT(perfect.total[k], 0) << task_name(static_cast<Task>(k + 1));
    EXPECT_EQ(perfect.correct[k], perfect.total[k]);
    EXPECT_EQ(wrong.total[k], perfect.total[k]);
    EXPECT_EQ(wrong.correct[k], 0);
  }
  // The span count equals the number of distinct ids marked in the batch.
  const int64_t marked_ids = std::get<0>(at::_unique(b.answer_span.flatten())).numel() - 1;  // minus -1
  EXPECT_EQ(std::accumulate(perfect.total.begin(), perfect.total.end(), int64_t{0}), marked_ids);
}

}  // namespace
}  // namespace hgpt::data
