// trained_model.cpp — opening a checkpoint for inference, and the run's text codec.
#include "hgpt/infer/trained_model.h"

#include "hgpt/data/synthetic.h"
#include "hgpt/errors.h"
#include "hgpt/files.h"
#include "hgpt/train/checkpoint.h"

#include <ATen/ATen.h>

namespace hgpt::infer {

// ---------------------------------------------------------------------------------------------
// The checkpoint

TrainedModel load_trained_model(const std::string& dir, std::optional<int64_t> step, const at::Device& device) {
  if (!is_directory(dir)) throw UserError("checkpoint folder '" + dir + "' does not exist; pass --checkpoint <out_dir>/<model_tag> of a run");
  TrainedModel run;
  run.dir = dir;
  if (!step) {
    step = train::latest_checkpoint(dir);
    if (!step) throw UserError("'" + dir + "' holds no complete checkpoint (meta_*.json); point --checkpoint at a run's <out_dir>/<model_tag>");
  }
  run.step = *step;
  const std::string meta_path = path_join(dir, train::step_name("meta", *step, ".json"));
  try {
    run.meta = train::read_meta(dir, *step);
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
  const std::string weights = path_join(dir, train::step_name("model", *step, ".pt"));
  train::TensorDict state;
  try {
    state = train::load_tensor_dict(weights);
  } catch (const c10::Error& e) {  // a dict whose values are not tensors
    throw UserError("checkpoint file '" + weights + "' is not a dict of tensors: " + e.what_without_backtrace());
  }
  train::load_module_state(*run.model, state, weights);
  run.model->to(device);
  run.model->eval();
  return run;
}

// ---------------------------------------------------------------------------------------------
// The text codec

TextCodec TextCodec::for_run(const Config& config, const std::string& tokenizer_dir) {
  const std::string dir = tokenizer_dir.empty() ? config.train.tokenizer : tokenizer_dir;
  TextCodec codec;
  if (dir.empty()) {
    if (config.train.data != "synthetic") {
      throw UserError("the run read token shards ('" + config.train.data +
                      "') without a tokenizer, so its text is unknown; pass --tokenizer DIR");
    }
    return codec;
  }
  codec.tokenizer_ = std::make_shared<const data::Tokenizer>(data::Tokenizer::load(dir));
  if (codec.tokenizer_->vocab_size() > config.model.vocab_size) {
    throw UserError("the tokenizer in '" + dir + "' has " + std::to_string(codec.tokenizer_->vocab_size()) +
                    " tokens but the model only " + std::to_string(config.model.vocab_size) + "; use the run's tokenizer");
  }
  return codec;
}

std::vector<uint32_t> TextCodec::encode_prompt(const std::string& text) const {
  if (!tokenizer_) {
    auto ids = data::encode_bytes(text);
    if (ids.empty() || ids.front() != data::kByteBos) ids.insert(ids.begin(), data::kByteBos);
    return ids;
  }
  auto ids = tokenizer_->encode(text);
  ids.insert(ids.begin(), tokenizer_->bos_id());
  return ids;
}

std::string TextCodec::decode(const std::vector<uint32_t>& ids) const {
  if (!tokenizer_) {
    std::vector<uint32_t> known;
    for (uint32_t id : ids) {
      if (id < data::kByteVocab) known.push_back(id);
    }
    return data::decode_bytes(known);
  }
  std::vector<uint32_t> known;
  for (uint32_t id : ids) {
    if (id < tokenizer_->vocab_size()) known.push_back(id);
  }
  return tokenizer_->decode(known);
}

uint32_t TextCodec::bos() const { return tokenizer_ ? tokenizer_->bos_id() : data::kByteBos; }

}  // namespace hgpt::infer
