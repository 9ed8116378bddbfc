// test_config.cpp — the config loader in-process: every shipped config loads with the facts its
// name promises, defaults are nanochat's, overrides win over the file, every block_pattern form
// resolves, to_json round-trips, and the grad-accumulation arithmetic divides or fails.
#include "hgpt/config.h"
#include "hgpt/errors.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <dirent.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

namespace hgpt {
namespace {

using nlohmann::json;

const std::string kConfigs = HGPT_SOURCE_DIR "/configs";

// The *.json files of configs/. POSIX readdir, not std::filesystem: libtorch.so exports its own
// std::filesystem functions, which misbehave when they interpose on libstdc++'s.
std::vector<std::string> shipped_configs() {
  std::vector<std::string> paths;
  DIR* dir = ::opendir(kConfigs.c_str());
  if (dir == nullptr) return paths;
  while (const dirent* entry = ::readdir(dir)) {
    const std::string name = entry->d_name;
    if (name.size() > 5 && name.compare(name.size() - 5, 5, ".json") == 0) paths.push_back(kConfigs + "/" + name);
  }
  ::closedir(dir);
  std::sort(paths.begin(), paths.end());
  return paths;
}

std::string repeat(const std::string& s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

// The message of the UserError `f` throws, or a failure when it throws nothing.
template <class F>
std::string user_error(F&& f) {
  try {
    f();
  } catch (const UserError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a UserError";
  return "";
}

TEST(ConfigFiles, EveryShippedConfigLoads) {
  const auto paths = shipped_configs();
  ASSERT_GE(paths.size(), 6u) << "configs/ should hold the five d20/d16 configs and tiny_cpu";
  for (const auto& path : paths) {
    SCOPED_TRACE(path);
    Config c;
    ASSERT_NO_THROW(c = load_config(path));
    EXPECT_EQ(static_cast<int64_t>(c.model.block_pattern.size()), c.model.depth);
    EXPECT_EQ(c.model.block_pattern.find_first_not_of("TM2S*-"), std::string::npos);
  }
}

TEST(ConfigFiles, EachConfigHasTheShapeItsNameSays) {
  const auto t = load_config(kConfigs + "/transformer_d20.json");
  EXPECT_EQ(t.model.depth, 20);
  EXPECT_EQ(t.model.block_pattern, std::string(20, 'T'));  // null → all T

  const auto m = load_config(kConfigs + "/mamba_d20.json");
  EXPECT_EQ(m.model.block_pattern, std::string(20, 'M'));

  const auto alt = load_config(kConfigs + "/hybrid_alternating_d20.json");
  EXPECT_EQ(alt.model.block_pattern, repeat("TM", 10));

  const auto early = load_config(kConfigs + "/hybrid_early_t_late_m_d20.json");
  EXPECT_EQ(early.model.block_pattern, std::string(12, 'T') + std::string(8, 'M'));

  const auto rtx = load_config(kConfigs + "/rtx3070_d16.json");
  EXPECT_EQ(rtx.model.depth, 16);
  EXPECT_EQ(rtx.model.block_pattern, std::string(10, 'T') + std::string(6, 'M'));
  EXPECT_EQ(rtx.model.sequence_len, 1024);
  EXPECT_EQ(rtx.train.device_batch_size, 4);
  EXPECT_EQ(rtx.train.total_batch_size, 524288);
  EXPECT_EQ(grad_accum_steps(rtx, 1), 524288 / (4 * 1024));

  const auto m2 = load_config(kConfigs + "/mamba2_d20.json");
  EXPECT_EQ(m2.model.block_pattern, std::string(20, '2'));
  EXPECT_EQ(m2.model.mamba2_d_state, 128);

  // Nemotron-H style: two attention layers spaced evenly in Mamba-2, none first or last.
  const auto nemotron = load_config(kConfigs + "/hybrid_nemotron_d20.json");
  EXPECT_EQ(nemotron.model.block_pattern, std::string(5, '2') + "T" + std::string(9, '2') + "T" + std::string(4, '2'));

  const auto tiny = load_config(kConfigs + "/tiny_cpu.json");
  EXPECT_EQ(tiny.model.depth, 4);
  EXPECT_GT(tiny.model.count('T'), 0);
  EXPECT_GT(tiny.model.count('M'), 0);
  EXPECT_EQ(tiny.train.data, "synthetic");
}

TEST(ConfigDefaults, MatchNanochat) {
  const Config c = config_from_json(json::object());
  // nanochat scripts/base_train.py
  EXPECT_EQ(c.model.depth, 20);
  EXPECT_EQ(c.model.aspect_ratio, 64);
  EXPECT_EQ(c.model.head_dim, 128);
  EXPECT_EQ(c.model.sequence_len, 2048);
  EXPECT_EQ(c.model.vocab_size, 65536);
  EXPECT_EQ(c.model.model_dim(), 1280);
  EXPECT_EQ(c.model.n_head(), 10);
  EXPECT_EQ(c.model.kv_heads(), 10);
  EXPECT_EQ(c.model.block_pattern, std::string(20, 'T'));
  EXPECT_EQ(c.train.device_batch_size, 32);
  EXPECT_EQ(c.train.total_batch_size, 524288);
  EXPECT_EQ(c.train.num_iterations, -1);
  EXPECT_EQ(c.train.target_flops, -1.0);
  EXPECT_EQ(c.train.target_param_data_ratio, 20.0);
  EXPECT_EQ(c.train.embedding_lr, 0.2);
  EXPECT_EQ(c.train.unembedding_lr, 0.004);
  EXPECT_EQ(c.train.matrix_lr, 0.02);
  EXPECT_EQ(c.train.weight_decay, 0.0);
  EXPECT_EQ(c.train.grad_clip, 1.0);
  EXPECT_EQ(c.train.warmup_ratio, 0.0);
  EXPECT_EQ(c.train.warmdown_ratio, 0.2);
  EXPECT_EQ(c.train.final_lr_frac, 0.0);
  EXPECT_EQ(c.train.eval_every, 250);
  EXPECT_EQ(c.train.eval_tokens, 20 * 524288);
  EXPECT_EQ(c.train.sample_every, 2000);
  EXPECT_EQ(c.train.seed, 42u);
  // our additions (issue 2)
  EXPECT_EQ(c.model.mamba_d_state, 16);
  EXPECT_EQ(c.model.mamba_d_conv, 4);
  EXPECT_EQ(c.model.mamba_expand, 2);
  EXPECT_FALSE(c.model.mamba_use_mlp);
  EXPECT_EQ(c.train.device, DeviceChoice::Auto);
  EXPECT_EQ(c.train.data, "synthetic");
  EXPECT_EQ(c.resolved_model_tag(), "d20");
  EXPECT_EQ(grad_accum_steps(c, 1), 8);  // 524288 / (32 · 2048)
}

TEST(ConfigOverrides, WinOverTheFile) {
  const std::string tiny = kConfigs + "/tiny_cpu.json";
  const auto base = load_config(tiny);
  ASSERT_EQ(base.model.sequence_len, 256);
  ASSERT_EQ(base.train.matrix_lr, 0.005);
  ASSERT_EQ(base.train.out_dir, "out");

  const auto c = load_config(tiny, {"max_seq_len=128", "matrix_lr=0.05", "out_dir=/tmp/x y", "depth=2",
                                    "block_pattern=MT", "model_tag=run1", "mamba_use_mlp"});
  EXPECT_EQ(c.model.sequence_len, 128);
  EXPECT_EQ(c.train.matrix_lr, 0.05);
  EXPECT_EQ(c.train.out_dir, "/tmp/x y");  // not JSON → taken as a plain string
  EXPECT_EQ(c.model.depth, 2);
  EXPECT_EQ(c.model.block_pattern, "MT");
  EXPECT_EQ(c.resolved_model_tag(), "run1");
  EXPECT_TRUE(c.model.mamba_use_mlp);  // a bare --flag sets a boolean key
  // Keys not overridden keep the file's values.
  EXPECT_EQ(c.model.vocab_size, 257);
  EXPECT_EQ(c.train.device_batch_size, 8);
  EXPECT_EQ(grad_accum_steps(c, 1), 2048 / (8 * 128));
}

TEST(ConfigOverrides, LaterOverrideWinsAndBooleansParse) {
  const auto c =
      config_from_json(json{{"depth", 2}, {"resume", true}}, {"depth=4", "depth=3", "resume=false", "seed=7"});
  EXPECT_EQ(c.model.depth, 3);
  EXPECT_EQ(c.model.block_pattern, "TTT");  // no pattern given: all T at the final depth
  EXPECT_EQ(c.train.resume, ResumeMode::Off);
  EXPECT_EQ(c.train.seed, 7u);
}

TEST(BlockPattern, AllFormsResolve) {
  auto pattern = [](const json& p, int depth = 4) {
    return config_from_json(json{{"depth", depth}, {"aspect_ratio", 32}, {"block_pattern", p}}).model.block_pattern;
  };
  EXPECT_EQ(pattern("TTMM"), "TTMM");
  EXPECT_EQ(pattern("tmTm"), "TMTM");
  EXPECT_EQ(pattern(json::array({"T", "M", "m", "t"})), "TMMT");
  EXPECT_EQ(pattern(json::array({"transformer", "Mamba", "TRANSFORMER", "mAmBa"})), "TMTM");
  EXPECT_EQ(pattern(nullptr), "TTTT");
  // The same forms through an override.
  auto over = [](const std::string& item) {
    return config_from_json(json{{"depth", 4}, {"aspect_ratio", 32}}, {item}).model.block_pattern;
  };
  EXPECT_EQ(over("block_pattern=TTMM"), "TTMM");
  EXPECT_EQ(over("block_pattern=mmtt"), "MMTT");
  EXPECT_EQ(over(R"(block_pattern=["mamba","T","transformer","m"])"), "MTTM");
  EXPECT_EQ(over("block_pattern=null"), "TTTT");
}

TEST(BlockPattern, BadEntriesNameTheKey) {
  const auto base = json{{"depth", 2}, {"aspect_ratio", 32}};
  auto with = [&](const json& p) {
    json j = base;
    j["block_pattern"] = p;
    return user_error([&] { config_from_json(j); });
  };
  EXPECT_NE(with("TX").find("block_pattern"), std::string::npos);
  EXPECT_NE(with("TX").find("'X'"), std::string::npos);
  EXPECT_NE(with(json::array({"T", "mamba3"})).find("'mamba3'"), std::string::npos);
  EXPECT_NE(with(json::array({"T", 1})).find("block_pattern"), std::string::npos);
  EXPECT_NE(with("TMT").find("block_pattern"), std::string::npos);  // 3 entries, depth 2
  EXPECT_NE(with(5).find("block_pattern"), std::string::npos);      // wrong JSON type
}

TEST(ConfigJson, RoundTripsEveryShippedConfig) {
  for (const auto& path : shipped_configs()) {
    SCOPED_TRACE(path);
    const auto c = load_config(path);
    const json j = c.to_json();
    // Every key, and only the keys, of the table.
    auto keys = config_keys();
    ASSERT_EQ(j.size(), keys.size());
    for (const auto& k : keys) EXPECT_TRUE(j.contains(k)) << k;
    ASSERT_TRUE(j["block_pattern"].is_array());
    EXPECT_EQ(j["block_pattern"].size(), static_cast<size_t>(c.model.depth));
    EXPECT_EQ(config_from_json(j).to_json(), j);
  }
  // Non-default values of every type survive too.
  const auto c = config_from_json(json{{"depth", 3},
                                       {"aspect_ratio", 32},
                                       {"block_pattern", "MTM"},
                                       {"n_kv_head", 1},
                                       {"mamba_use_mlp", true},
                                       {"seed", 123456789012ull},
                                       {"target_flops", 1.5e18},
                                       {"tokenizer", "tok/dir"},
                                       {"resume", true}});
  const json j = c.to_json();
  EXPECT_EQ(j["block_pattern"], json::array({"M", "T", "M"}));
  EXPECT_EQ(j["seed"].get<uint64_t>(), 123456789012ull);
  EXPECT_EQ(j["max_seq_len"], 2048);
  EXPECT_EQ(config_from_json(j).to_json(), j);
}

TEST(ConfigValidation, GradAccumulationDividesOrNamesTotalBatchSize) {
  const auto m2 = load_config(kConfigs + "/mamba2_d20.json");
  EXPECT_EQ(m2.model.block_pattern, std::string(20, '2'));
  EXPECT_EQ(m2.model.mamba2_d_state, 128);

  // Nemotron-H style: two attention layers spaced evenly in Mamba-2, none first or last.
  const auto nemotron = load_config(kConfigs + "/hybrid_nemotron_d20.json");
  EXPECT_EQ(nemotron.model.block_pattern, std::string(5, '2') + "T" + std::string(9, '2') + "T" + std::string(4, '2'));

  const auto tiny = load_config(kConfigs + "/tiny_cpu.json");  // 2048 tokens = 8 × 256 per rank
  EXPECT_EQ(grad_accum_steps(tiny, 1), 1);
  const auto msg = user_error([&] { load_config(kConfigs + "/tiny_cpu.json", {}, /*world_size=*/2); });
  EXPECT_NE(msg.find("total_batch_size"), std::string::npos) << msg;
  const auto big = load_config(kConfigs + "/tiny_cpu.json", {"total_batch_size=8192"}, 2);
  EXPECT_EQ(grad_accum_steps(big, 2), 2);  // 8192 / (8 · 256 · 2)
}

// Mamba-2's keys: one error naming the key; the head and group split only matters with M2 layers.
TEST(ConfigValidation, Mamba2KeysNameTheKeyThatIsWrong) {
  const json m2 = {{"depth", 2}, {"aspect_ratio", 32}, {"head_dim", 16}, {"block_pattern", json::array({"M2", "t"})}};
  const auto ok = config_from_json(m2);  // d_inner 128, headdim 64: 2 heads
  EXPECT_EQ(ok.model.block_pattern, "2T");
  EXPECT_EQ(config_from_json(json{{"depth", 1}, {"block_pattern", json::array({"mamba2"})}}).model.block_pattern, "2");
  struct Bad {
    json patch;
    std::string key;
  };
  for (const auto& bad :
       {Bad{{{"mamba2_headdim", 48}}, "mamba2_headdim"},                         // 128 / 48
        Bad{{{"mamba2_headdim", 32}, {"mamba2_ngroups", 3}}, "mamba2_ngroups"},  // 4 heads / 3
        Bad{{{"mamba2_d_state", 0}}, "mamba2_d_state"}, Bad{{{"mamba2_d_state", 257}}, "mamba2_d_state"},
        Bad{{{"mamba2_chunk_size", 0}}, "mamba2_chunk_size"}, Bad{{{"mamba2_ngroups", 0}}, "mamba2_ngroups"}}) {
    json j = m2;
    j.merge_patch(bad.patch);
    const auto msg = user_error([&] { config_from_json(j); });
    EXPECT_EQ(msg.rfind("config key '" + bad.key + "'", 0), 0u) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
  // On the command line a pattern of digits stays a pattern.
  EXPECT_EQ(config_from_json(json{{"depth", 4}}, {"block_pattern=2222"}).model.block_pattern, "2222");
  EXPECT_EQ(config_from_json(json{{"depth", 2}}, {"block_pattern=T2"}).model.block_pattern, "T2");
  // Without M2 layers a headdim that does not divide is no error: the key is unused.
  json no_m2 = m2;
  no_m2["block_pattern"] = "TM";
  no_m2["mamba2_headdim"] = 48;
  EXPECT_NO_THROW(config_from_json(no_m2));
}

TEST(ConfigValidation, HeadsMustDivideAndGqaMustDivideHeads) {
  // depth 5 with defaults: model_dim 320, ceil(320/128) = 3 heads, 320 % 3 ≠ 0.
  EXPECT_NE(user_error([] { config_from_json(json{{"depth", 5}}); }).find("head_dim"), std::string::npos);
  // 4 heads of 32 with 3 kv heads does not group.
  const auto msg = user_error([] {
    config_from_json(json{{"depth", 2}, {"aspect_ratio", 64}, {"head_dim", 32}, {"n_kv_head", 3}});
  });
  EXPECT_NE(msg.find("n_kv_head"), std::string::npos) << msg;
  const auto ok = config_from_json(json{{"depth", 2}, {"aspect_ratio", 64}, {"head_dim", 32}, {"n_kv_head", 2}});
  EXPECT_EQ(ok.model.n_head(), 4);
  EXPECT_EQ(ok.model.kv_heads(), 2);
}

// The keys a resume must match come from the key table: every model key but max_seq_len,
// activation_checkpointing and mamba2_chunk_size.
TEST(ConfigKeys, ArchitectureKeysAreTheModelKeysButSequenceLength) {
  const std::vector<std::string> expected = {"depth",         "aspect_ratio",  "head_dim",       "n_kv_head",
                                             "vocab_size",    "block_pattern", "mamba_d_state",  "mamba_d_conv",
                                             "mamba_expand",  "mamba_use_mlp", "mamba2_d_state", "mamba2_headdim",
                                             "mamba2_ngroups"};
  EXPECT_EQ(architecture_keys(), expected);
}

// Found by a hostile probe: eval_tokens = 10^9 on the built-in corpus ran an evaluation of hours
// before the first step. Bounded at 2^34 tokens, with one line naming the key.
TEST(ConfigValidation, EvalTokensAreBounded) {
  const int64_t limit = int64_t{1} << 34;
  EXPECT_EQ(config_from_json({{"eval_tokens", limit}}).train.eval_tokens, limit);
  try {
    config_from_json({{"eval_tokens", limit + 1}});
    FAIL() << "accepted eval_tokens beyond the bound";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("config key 'eval_tokens': must be at most 17179869184"), std::string::npos)
        << e.what();
  }
}

// Found by fuzz_config: an override whose value is not UTF-8 was kept as a JSON string, and the
// first dump() of it (an error message, to_json() for a meta file) threw json::type_error.
TEST(ConfigOverrides, ValuesThatAreNotUtf8AreAUserError) {
  for (const char* item : {"matrix_lr=0\xaf\xab", "out_dir=run\xff", "block_pattern=\xc3"}) {
    SCOPED_TRACE(item);
    const std::string msg = user_error([&] { config_from_json(json{{"depth", 2}}, {item}); });
    EXPECT_NE(msg.find("UTF-8"), std::string::npos) << msg;
  }
}

}  // namespace
}  // namespace hgpt

namespace hgpt {
namespace {

// The rows `| \`key\` | default | meaning |` of README.md's "Config keys" section.
struct ReadmeKey {
  std::string name, default_cell, row;
};
std::vector<ReadmeKey> readme_key_rows() {
  std::ifstream in(HGPT_SOURCE_DIR "/README.md");
  std::vector<ReadmeKey> rows;
  bool inside = false;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("#", 0) == 0) inside = line == "### Config keys" || (inside && line.rfind("####", 0) == 0);
    if (!inside || line.rfind("| `", 0) != 0) continue;
    const size_t name_end = line.find("` |", 3);
    const size_t cell_end = line.find(" |", name_end + 3);
    if (name_end == std::string::npos || cell_end == std::string::npos) continue;
    rows.push_back({line.substr(3, name_end - 3), line.substr(name_end + 4, cell_end - name_end - 4), line});
  }
  return rows;
}

// A default as written in either place: JSON where it parses (so 0.0 equals 0), else the text.
json as_value(std::string text) {
  text.erase(std::remove(text.begin(), text.end(), '`'), text.end());
  const json parsed = json::parse(text, nullptr, /*allow_exceptions=*/false);
  return parsed.is_discarded() ? json(text) : parsed;
}

TEST(ConfigDocs, ReadmeListsExactlyTheKeysOfTheTableWithTheirDefaults) {
  const auto rows = readme_key_rows();
  ASSERT_FALSE(rows.empty()) << "no key rows under README.md's '### Config keys'";
  std::vector<std::string> readme_names, table_names;
  for (const auto& r : rows) readme_names.push_back(r.name);
  for (const auto& doc : config_key_docs()) table_names.push_back(doc.name);
  EXPECT_EQ(readme_names, table_names) << "README.md's key tables and the key table (config.cpp) list different keys";
  for (const auto& doc : config_key_docs()) {
    SCOPED_TRACE(doc.name);
    EXPECT_FALSE(doc.doc.empty());
    const auto row = std::find_if(rows.begin(), rows.end(), [&](const ReadmeKey& r) { return r.name == doc.name; });
    if (row == rows.end()) continue;
    EXPECT_EQ(as_value(row->default_cell), as_value(doc.default_value)) << row->row;
    for (const auto& value : doc.allowed)
      EXPECT_NE(row->row.find(value), std::string::npos) << "allowed value " << value;
  }
}

TEST(ConfigDocs, EveryDefaultLoadsAsTheKeysValue) {
  // The documented defaults are what a config without the key gets: feeding them back changes nothing.
  json object = json::object();
  for (const auto& doc : config_key_docs()) {
    if (doc.name == "model_tag" || doc.name == "block_pattern") continue;  // described, not literal
    object[doc.name] = json::parse(doc.default_value);
  }
  EXPECT_EQ(config_from_json(object).to_json(), config_from_json(json::object()).to_json());
}

}  // namespace
}  // namespace hgpt
