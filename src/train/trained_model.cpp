// trained_model.cpp — opening a checkpoint for inference or evaluation.
#include "hgpt/train/trained_model.h"

#include "hgpt/errors.h"
#include "hgpt/files.h"
#include "hgpt/train/checkpoint.h"

#include <ATen/ATen.h>

namespace hgpt::train {

TrainedModel load_trained_model(const std::string& dir, std::optional<int64_t> step, const at::Device& device) {
  if (!is_directory(dir))
    throw UserError("checkpoint folder '" + dir + "' does not exist; pass --checkpoint <out_dir>/<model_tag> of a run");
  TrainedModel run;
  run.dir = dir;
  if (!step) {
    step = latest_checkpoint(dir);
    if (!step)
      throw UserError(
          "'" + dir +
          "' holds no complete checkpoint (meta_*.json); point --checkpoint at a run's <out_dir>/<model_tag>");
  }
  run.step = *step;
  const std::string meta_path = path_join(dir, meta_file_name(*step));
  try {
    run.meta = read_meta(dir, *step);
  } catch (const UserError& e) {
    throw UserError(std::string(e.what()) + " (no complete checkpoint at step " + std::to_string(*step) +
                    "; leave out --step for the newest one)");
  }
  if (!run.meta.is_object() || !run.meta.contains("config")) {
    throw UserError("'" + meta_path + "' has no \"config\": it is not a hybridgpt checkpoint's meta file");
  }
  try {
    run.config = config_from_json(run.meta.at("config"));
  } catch (const UserError& e) {
    throw UserError("'" + meta_path + "': " + e.what());
  }
  run.model = model::HybridGPT(run.config.model);
  const std::string weights = path_join(dir, model_file_name(*step));
  const auto checksum = run.meta.find("model_checksum");  // absent in checkpoints from before it was kept
  TensorDict state;
  try {
    state = load_tensor_dict(
        weights, checksum != run.meta.end() && checksum->is_string() ? checksum->get<std::string>() : std::string());
  } catch (const c10::Error& e) {  // a dict whose values are not tensors
    throw UserError("checkpoint file '" + weights + "' is not a dict of tensors: " + e.what_without_backtrace());
  }
  load_module_state(*run.model, state, weights);
  run.model->to(device);
  run.model->eval();
  return run;
}

}  // namespace hgpt::train
