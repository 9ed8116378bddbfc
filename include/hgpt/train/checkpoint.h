// checkpoint.h — checkpoints in <out_dir>/<model_tag>/ (docs/FORMATS.md has the file formats):
//   model_<step:06d>.pt             dict name → tensor (torch.load reads it), written by rank 0
//   optim_<step:06d>_rank<r>.pt     dict name → tensor of each rank's optimizer state
//   meta_<step:06d>.json            step, resolved config, val metrics, loader position, loss EMA,
//                                   CPU RNG state, written by rank 0
// Every file is written under a temporary name and renamed; meta is written last, after all
// ranks' files, so a checkpoint is complete exactly when its meta file exists.
#pragma once

#include "hgpt/train/checkpoint_files.h"

#include <ATen/core/Tensor.h>
#include <nlohmann/json_fwd.hpp>

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace torch::nn {
class Module;
}
namespace hgpt::data {
class Loader;
}
namespace hgpt::model {
class HybridGPT;
}

namespace hgpt::train {

using TensorDict = std::vector<std::pair<std::string, at::Tensor>>;

// Tensor dicts in PyTorch's zip/pickle format (torch.save / torch.load compatible). Saving returns
// the file's checksum (fnv1a64_hex of its bytes); loading with a non-empty `checksum` refuses a file
// whose bytes no longer match (flipped or torn bytes that the archive format itself would accept).
std::string save_tensor_dict(const std::string& path, const TensorDict& dict);
TensorDict load_tensor_dict(const std::string& path, const std::string& checksum = "");

// The module's parameters and buffers by name (moved to CPU), and the reverse: names, shapes and
// dtypes (floating point where the model's are) must match and every value must be finite.
TensorDict module_state(const torch::nn::Module& module);
void load_module_state(torch::nn::Module& module, const TensorDict& state, const std::string& source);

// The newest step whose meta file exists in dir, if any.
std::optional<int64_t> latest_checkpoint(const std::string& dir);
nlohmann::json read_meta(const std::string& dir, int64_t step);

// ---------------------------------------------------------------------------------------------
// A run's checkpoints in ctx.run_dir()

struct Context;
struct Optimizers;
class LossEma;

// What a checkpoint saves and resume restores (besides the CPU RNG state).
struct TrainState {
  model::HybridGPT& model;
  Optimizers& optimizers;
  data::Loader& train_loader;
  LossEma& ema;
};

// The state after `step` steps with the last validation metrics `val`; every rank calls it.
void save_checkpoint(const Context& ctx, int64_t step, const TrainState& state, const nlohmann::json& val);
// Restores the state from the newest complete checkpoint and returns its step. UserError when
// there is none, when it was written by another number of ranks or for another architecture.
int64_t resume_checkpoint(const Context& ctx, const TrainState& state);

}  // namespace hgpt::train
