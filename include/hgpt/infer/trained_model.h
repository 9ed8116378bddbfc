// trained_model.h — a checkpoint opened for inference or evaluation: the model rebuilt from
// meta_<step>.json's config with model_<step>.pt's weights, and the text codec the run used
// (its tokenizer, or the built-in corpus's bytes).
#pragma once

#include "hgpt/config.h"
#include "hgpt/data/tokenizer.h"
#include "hgpt/model/gpt.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace hgpt::infer {

struct TrainedModel {
  std::string dir;  // the checkpoint folder (<out_dir>/<model_tag> of the run)
  int64_t step = 0;
  nlohmann::json meta;
  Config config;  // the run's config, as meta saved it
  model::HybridGPT model{nullptr};
};

// Opens the checkpoint at `step`, or the newest complete one (whose meta file exists), in `dir`,
// on `device`. UserError, naming the file and the fix, when there is none, when a file is torn
// or not ours, or when the weights do not fit the config in meta.
TrainedModel load_trained_model(const std::string& dir, std::optional<int64_t> step, const at::Device& device);

// Text ↔ tokens as the run saw them: a tokenizer, or bytes with <|bos|> = 256 (built-in corpus).
class TextCodec {
 public:
  // The tokenizer in `tokenizer_dir` when given, else the run's (config key `tokenizer`), else
  // bytes for the built-in corpus. Token shards without a tokenizer are a UserError (their text
  // is unknown); so is a tokenizer larger than the model's vocabulary.
  static TextCodec for_run(const Config& config, const std::string& tokenizer_dir = "");

  // <|bos|> then the text (the byte codec reads a leading literal "<|bos|>" as that token).
  std::vector<uint32_t> encode_prompt(const std::string& text) const;
  // Ids the tokenizer does not know (a padded vocabulary can sample them) are dropped.
  std::string decode(const std::vector<uint32_t>& ids) const;
  uint32_t bos() const;  // the document separator: generation stops there

 private:
  std::shared_ptr<const data::Tokenizer> tokenizer_;  // null: bytes
};

}  // namespace hgpt::infer
