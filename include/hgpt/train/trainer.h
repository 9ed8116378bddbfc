// trainer.h — nanochat's base_train loop in C++: build model + optimizers + loaders from the
// config, train with grad accumulation, evaluate, sample, log, checkpoint, resume.
#pragma once

#include "hgpt/config.h"
#include "hgpt/data/loader.h"
#include "hgpt/errors.h"
#include "hgpt/model/gpt.h"
#include "hgpt/train/context.h"

namespace hgpt::train {

struct Optimizers;  // optimizers.h

// The config with bos_token_id resolved where document_boundaries is "reset" and it is -1: 256
// for the built-in corpus, the tokenizer's <|bos|> for token shards (UserError without one).
Config with_document_bos(const Config& config);

// Builds and initialises the model from the seed (identical on every rank).
model::HybridGPT build_model(const Config& config, const at::Device& device);

struct StepResult {
  double loss = 0.0;       // mean training loss of the step, averaged over ranks
  double grad_norm = 0.0;  // global gradient norm before clipping
};
// Thrown by train_step, on every rank alike, when the step's loss or gradient norm is not finite:
// the weights and optimizer state are still those from before the step.
struct Diverged : UserError {
  using UserError::UserError;
};
// One optimizer step: `accum` micro-batches (loss / accum backward each), gradients averaged
// across ranks, clipped to the config's grad_clip (> 0), then — only when the loss and the
// gradient norm are finite, else Diverged — each optimizer steps, the parameters are synced
// across ranks and all gradients are cleared.
// The caller sets learning-rate multipliers and momentum beforehand.
StepResult train_step(const Context& ctx, model::HybridGPT& model, Optimizers& optimizers, data::Loader& loader,
                      int64_t accum);

// The whole run. Returns the process exit code (0; 128+signal after a clean interrupt).
int run_training(const Config& config, dist::ProcessGroup& pg, c10::Device device);

}  // namespace hgpt::train
