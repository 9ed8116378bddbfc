// trained_model.h — a checkpoint opened for inference or evaluation (the sample and evaluate
// tools): the model rebuilt from meta_<step>.json's config with model_<step>.pt's weights.
#pragma once

#include "hgpt/config.h"
#include "hgpt/model/gpt.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>

namespace hgpt::train {

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

}  // namespace hgpt::train
