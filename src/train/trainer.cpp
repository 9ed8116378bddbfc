// trainer.cpp — the training loop (reads like nanochat's scripts/base_train.py): set-up, then for
// every step evaluate, sample, save, stop or take one optimizer step.
#include "hgpt/train/trainer.h"

#include "hgpt/data/synthetic.h"
#include "hgpt/dist/process_group.h"
#include "hgpt/errors.h"
#include "hgpt/files.h"
#include "hgpt/infer/text_codec.h"
#include "hgpt/model/sizes.h"
#include "hgpt/optim/schedule.h"
#include "hgpt/strings.h"
#include "hgpt/tokenizer/tokenizer.h"
#include "hgpt/train/checkpoint.h"
#include "hgpt/train/evaluate.h"
#include "hgpt/train/metrics.h"
#include "hgpt/train/optimizers.h"
#include "hgpt/train/precision.h"
#include "hgpt/train/run_dir.h"
#include "hgpt/train/summary.h"

#include <ATen/ATen.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>

#include <unistd.h>

namespace hgpt::train {

Config with_document_bos(const Config& config) {
  Config c = config;
  if (c.model.document_boundaries != DocumentBoundaries::Reset || c.model.bos_token_id >= 0) return c;
  if (c.train.data == "synthetic") {
    c.model.bos_token_id = data::kByteBos;
    return c;
  }
  if (c.train.tokenizer.empty()) {
    throw UserError(
        "config key 'document_boundaries': \"reset\" on token shards needs the token that starts a document; "
        "set tokenizer to the shards' tokenizer directory (its <|bos|>) or bos_token_id to the id");
  }
  c.model.bos_token_id = infer::TextCodec::for_run(c).bos();
  return c;
}

model::HybridGPT build_model(const Config& config, const at::Device& device) {
  at::manual_seed(config.train.seed);
  model::HybridGPT gpt(config.model);
  gpt->init_weights();
  gpt->to(device);
  return gpt;
}

// ---------------------------------------------------------------------------------------------
// One optimizer step

StepResult train_step(const Context& ctx, model::HybridGPT& gpt, Optimizers& optimizers, data::Loader& loader,
                      int64_t accum) {
  dist::ProcessGroup& pg = ctx.pg;
  const double grad_clip = ctx.config.train.grad_clip;
  double loss_sum = 0.0;
  int64_t first_bad_micro = -1;  // the first micro-batch whose loss is not finite, on this rank
  for (int64_t micro = 0; micro < accum; ++micro) {
    const data::Batch batch = loader.next();
    at::Tensor loss;
    {
      AutocastGuard guard(ctx.autocast);
      loss = gpt->loss(batch.inputs.to(ctx.device), batch.targets.to(ctx.device));
    }
    const double value = loss.item<double>();
    if (!std::isfinite(value) && first_bad_micro < 0) first_bad_micro = micro;
    loss_sum += value;
    (loss / static_cast<double>(accum)).backward();
  }
  std::vector<at::Tensor> params, grads;
  for (auto& p : gpt->parameters()) {
    params.push_back(p);
    if (p.grad().defined()) grads.push_back(p.mutable_grad());
  }
  if (pg.is_distributed()) pg.all_reduce_mean_(grads);
  StepResult result;
  result.loss = pg.is_distributed() ? pg.all_reduce_mean(loss_sum / accum) : loss_sum / accum;
  // The norm is needed without clipping too, for the check below: an infinite max_norm scales by 1.
  result.grad_norm = optim::clip_grad_norm(params, grad_clip > 0 ? grad_clip : INFINITY);
  // Before any update: a non-finite loss or gradient would poison the weights (the loss and the
  // norm are the same on every rank, so all ranks stop here alike).
  if (!std::isfinite(result.loss) || !std::isfinite(result.grad_norm)) {
    for (auto& p : params) p.mutable_grad() = at::Tensor();
    std::string where = first_bad_micro >= 0 ? "micro-batch " + std::to_string(first_bad_micro) +
                                                   (pg.is_distributed() ? " of rank " + std::to_string(pg.rank()) : "")
                                             : "a micro-batch of another rank";
    throw Diverged(std::isfinite(result.loss)
                       ? "the gradient norm is " + std::to_string(result.grad_norm) + " (the loss is finite)"
                       : "the loss is " + std::to_string(result.loss) + " (first in " + where + ")");
  }
  for (auto* opt : optimizers.all()) opt->step();
  if (pg.is_distributed()) sync_params(optimizers, pg);
  for (auto& p : params) p.mutable_grad() = at::Tensor();  // every gradient, owned or not
  return result;
}

// ---------------------------------------------------------------------------------------------
// The run's helpers

namespace {

std::atomic<int> g_stop_signal{0};

// The first SIGINT/SIGTERM asks for a stop at the next step boundary (after an evaluation that is
// running: it can be long); a second one exits at once. Checkpoints are written atomically, so the
// newest complete one survives that. Only async-signal-safe calls here.
extern "C" void on_stop_signal(int sig) {
  if (g_stop_signal.exchange(sig) != 0) {
    static const char forced[] = "\nsecond signal: exiting now; the newest complete checkpoint is kept\n";
    (void)!::write(STDERR_FILENO, forced, sizeof(forced) - 1);
    ::_exit(128 + sig);
  }
  static const char first[] =
      "\nstopping at the end of this step or evaluation (checkpoint, then exit); signal again to exit now\n";
  (void)!::write(STDERR_FILENO, first, sizeof(first) - 1);
}

// The signal every rank stops on: 0 while none arrived anywhere, SIGINT when any rank got one,
// else SIGTERM. One all-reduce of #SIGINT + 65536·#SIGTERM (exact in a double), so that all ranks
// save the same step and exit alike.
int agreed_stop_signal(dist::ProcessGroup& pg) {
  const int signal_here = g_stop_signal.load();
  double signals = (signal_here == SIGINT ? 1.0 : 0.0) + (signal_here == SIGTERM ? 65536.0 : 0.0);
  if (pg.is_distributed()) signals = pg.all_reduce_sum(signals);
  if (signals == 0) return 0;
  return std::fmod(signals, 65536.0) > 0 ? SIGINT : SIGTERM;
}

// Length extrapolation: the final model on validation rows of 2×, 4×, ... up to extrapolate_to ×
// max_seq_len, each a metrics record with its eval_seq_len.
template <class Say>
void evaluate_longer(const Context& ctx, model::HybridGPT& gpt, int64_t step, const std::vector<int32_t>& token_bytes,
                     MetricsWriter& metrics, const Say& say) {
  const Config& config = ctx.config;
  for (int64_t multiple = 2; multiple <= config.train.extrapolate_to; multiple *= 2) {
    const Config at = config_at_length(config, multiple * config.model.sequence_len);
    data::Loader loader(loader_spec(at, "val", ctx.pg.rank(), ctx.pg.world_size()));
    const EvalPlan plan = plan_evaluation(at, ctx.pg.world_size(), loader);
    if (!plan.note.empty()) say("note: at " + std::to_string(multiple) + "× the training length, " + plan.note);
    nlohmann::json record = eval_record(evaluate(ctx, gpt, loader, plan, token_bytes));
    say("step " + std::to_string(step) + " at " + std::to_string(multiple) + "× the training length (" +
        std::to_string(at.model.sequence_len) + " tokens) | " + format_eval(record));
    record["step"] = step;
    record["eval_seq_len"] = at.model.sequence_len;
    metrics.write(record);
  }
}

// Whether this run resumes: resume=true always, false never; "auto" (for launchers that restart a
// failed job, torchrun --max-restarts) when rank 0, which holds the folder's lock, finds a complete
// checkpoint there — one decision, broadcast, so every rank does the same.
template <class Say>
bool decide_resume(const Context& ctx, const std::string& dir, const Say& say) {
  const ResumeMode mode = ctx.config.train.resume;
  if (mode != ResumeMode::Auto) return mode == ResumeMode::On;
  double found = ctx.master() && latest_checkpoint(dir) ? 1.0 : 0.0;
  if (ctx.pg.is_distributed()) found = ctx.pg.all_reduce_sum(found);
  say(found > 0 ? "resume=auto: resuming from the newest checkpoint in " + dir
                : "resume=auto: no checkpoint in " + dir + " yet, starting afresh");
  return found > 0;
}

// The lines printed before training: device, ranks, backend, the dry-run summary, the folder.
std::string run_header(const Context& ctx) {
  const bool cuda = ctx.device.is_cuda();
  std::ostringstream head;
  head << "device " << ctx.device << " (" << device_name(cuda, ctx.device.index()) << "), " << ctx.pg.world_size()
       << " rank(s), backend " << ctx.pg.backend_name() << "\n"
       << format_summary(run_summary(ctx.config, ctx.pg.world_size(), cuda))
       << "checkpoints and metrics: " << ctx.run_dir();
  return head.str();
}

// "step 00010/01200 | loss 3.311114 | lrm 1.00 | dt 232.1ms | tok/s 8825 | eta 4m40s"; mfu < 0: none.
std::string format_step(int64_t steps_done, int64_t num_iterations, double loss_ema, double lr_mult, double dt,
                        double tok_per_s, double mfu, double eta) {
  char mfu_text[32] = "";
  if (mfu >= 0) std::snprintf(mfu_text, sizeof(mfu_text), " | mfu %.2f%%", mfu);
  char line[256];
  std::snprintf(line, sizeof(line), "step %05lld/%05lld | loss %.6f | lrm %.2f | dt %.1fms | tok/s %.0f%s | eta %s",
                static_cast<long long>(steps_done), static_cast<long long>(num_iterations), loss_ema, lr_mult, dt * 1e3,
                tok_per_s, mfu_text, format_duration(eta).c_str());
  return line;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The run

int run_training(const Config& config, dist::ProcessGroup& pg, c10::Device device) {
  const auto& t = config.train;
  const Context ctx = make_context(config, pg, device);
  auto say = [&](const std::string& line) {
    if (ctx.master()) std::cout << line << std::endl;
  };

  // Tokenizer, data, sizes --------------------------------------------------------------------
  const auto codec = infer::TextCodec::for_run(config);  // the run's tokenizer, or bytes
  const tokenizer::Tokenizer* tokenizer = codec.tokenizer();
  const int64_t accum = grad_accum_steps(config, pg.world_size());
  const int64_t num_iterations = resolve_num_iterations(config);
  data::Loader train_loader(loader_spec(config, "train", pg.rank(), pg.world_size()));
  // Validated now, so bad data stops the run before any training.
  data::Loader val_loader(loader_spec(config, "val", pg.rank(), pg.world_size()));
  const EvalPlan val_plan = plan_evaluation(config, pg.world_size(), val_loader);
  const auto token_bytes = token_byte_lengths(config, tokenizer);

  // Model and optimizers ----------------------------------------------------------------------
  model::HybridGPT gpt = build_model(config, ctx.device);
  Optimizers optimizers = build_optimizers(gpt, config, pg.rank(), pg.world_size());
  const double flops_per_token = model::flops_per_token(config.model);
  const double peak =
      peak_flops_for(device_name(ctx.device.is_cuda(), ctx.device.index()), t.peak_flops) * pg.world_size();

  // Output folder, resume, metrics ------------------------------------------------------------
  const std::string dir = ctx.run_dir();
  // resume=true names a run that exists: a mistyped model_tag must not leave an empty folder behind.
  if (t.resume == ResumeMode::On && !is_directory(dir))
    throw UserError("resume=true but there is no run folder '" + dir +
                    "'; start without --resume=true or point out_dir/model_tag at a previous run");
  std::optional<RunLock> run_lock;  // one writer per run folder, held until the run returns
  if (ctx.master()) run_lock.emplace(dir);
  const bool resume = decide_resume(ctx, dir, say);
  // A fresh run never mixes with another run's checkpoints.
  if (ctx.master() && !resume) prepare_fresh_run_dir(dir, t.overwrite);
  LossEma ema;
  const TrainState state{gpt, optimizers, train_loader, ema};
  int64_t start_step = 0;
  if (resume) {
    start_step = resume_checkpoint(ctx, state);
    if (start_step > num_iterations) {
      throw UserError("config key 'num_iterations': the checkpoint in '" + dir + "' is at step " +
                      std::to_string(start_step) + ", past num_iterations = " + std::to_string(num_iterations) +
                      "; resume with --num_iterations=" + std::to_string(start_step) + " or more");
    }
    say("resumed from " + dir + " at step " + std::to_string(start_step));
  }
  // A resumed run reads the tokenizer it started with: the same files, not only the same path.
  const std::string started_with = resume && ctx.master() ? recorded_tokenizer_fingerprint(dir) : "";
  if (!started_with.empty() && !t.tokenizer.empty() && tokenizer::tokenizer_fingerprint(t.tokenizer) != started_with)
    throw UserError("config key 'tokenizer': '" + t.tokenizer + "' has changed since this run started (its files " +
                    "differ from those " + path_join(dir, "run.json") + " recorded); restore it, or start afresh " +
                    "(--overwrite=true, or another model_tag)");
  MetricsWriter metrics;
  if (ctx.master()) metrics.open(path_join(dir, "metrics.jsonl"), start_step);
  if (ctx.master()) {
    const bool cuda = ctx.device.is_cuda();
    write_run_record(dir, run_summary(config, pg.world_size(), cuda), config, device_name(cuda, ctx.device.index()));
  }
  std::signal(SIGINT, on_stop_signal);  // from here on a signal stops at the next step boundary
  std::signal(SIGTERM, on_stop_signal);
  say(run_header(ctx));
  if (!val_plan.note.empty()) say("note: " + val_plan.note);

  // Samples need a way to turn text into tokens and back: the byte corpus or a tokenizer.
  const bool can_sample = codec.knows_text();
  if (t.sample_every > 0 && !can_sample)
    say("no samples: token shards without a tokenizer cannot be decoded (set tokenizer)");

  // The loop: step counts finished optimizer steps; eval/sample/save happen before step `step`.
  nlohmann::json last_val;
  double train_seconds = 0.0;
  int64_t timed_steps = 0;
  for (int64_t step = start_step;; ++step) {
    const bool last_step = step == num_iterations;

    if (last_step || (t.eval_every > 0 && step % t.eval_every == 0)) {
      val_loader.set_position(0);
      last_val = eval_record(evaluate(ctx, gpt, val_loader, val_plan, token_bytes));
      say("step " + std::to_string(step) + "/" + std::to_string(num_iterations) + " | " + format_eval(last_val));
      nlohmann::json rec = last_val;
      rec["step"] = step;
      metrics.write(rec);
    }
    if (ctx.master() && can_sample && t.sample_every > 0 && (last_step || step % t.sample_every == 0)) {
      print_samples(ctx, gpt, tokenizer);
    }
    const bool save_now = step > start_step && (last_step || (t.save_every > 0 && step % t.save_every == 0));
    if (save_now) {
      save_checkpoint(ctx, step, state, last_val);
      say("saved checkpoint " + path_join(dir, model_file_name(step)));
    }
    if (last_step) {
      evaluate_longer(ctx, gpt, step, token_bytes, metrics, say);  // extrapolate_to, after the save
      break;
    }

    // Interrupted (SIGINT or SIGTERM on any rank): every rank saves this step and exits alike.
    if (const int stop_signal = agreed_stop_signal(pg)) {
      if (!save_now) save_checkpoint(ctx, step, state, last_val);
      say("interrupted at step " + std::to_string(step) + ": checkpoint in " + dir +
          "; continue with the same command plus --resume=true");
      return 128 + stop_signal;
    }

    // Training step ---------------------------------------------------------------------------
    const auto t0 = std::chrono::steady_clock::now();
    const double lr_mult =
        optim::lr_multiplier(step, num_iterations, t.warmup_ratio, t.warmdown_ratio, t.final_lr_frac);
    for (auto* opt : optimizers.all()) opt->set_lr_mult(lr_mult);
    optimizers.muon->set_momentum(optim::muon_momentum(step));
    StepResult r;
    try {
      r = train_step(ctx, gpt, optimizers, train_loader, accum);
    } catch (const Diverged& e) {
      // The weights saved at this very step gave the non-finite loss: withdraw that checkpoint.
      if (save_now && ctx.master()) withdraw_checkpoint(dir, step);
      throw Diverged(
          "training diverged at step " + std::to_string(step) + ": " + e.what() + "; the weights were not updated" +
          (save_now ? " and the checkpoint of step " + std::to_string(step) + " (its weights) was withdrawn" : "") +
          ". Lower the learning rates or set grad_clip, then resume from the newest checkpoint");
    }
    if (ctx.device.is_cuda()) at::detail::getCUDAHooks().deviceSynchronize(ctx.device.index());
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    const double smooth = ema.update(r.loss);
    if (step - start_step >= 1) train_seconds += dt, ++timed_steps;  // the first step warms up
    const double tok_per_s = t.total_batch_size / dt;
    const double mfu = peak > 0 ? 100.0 * flops_per_token * tok_per_s / peak : -1.0;
    const double eta = (timed_steps ? train_seconds / timed_steps : dt) * (num_iterations - step - 1);
    nlohmann::json rec = {{"step", step + 1},        {"loss", r.loss},    {"loss_ema", smooth},
                          {"lr_mult", lr_mult},      {"dt_ms", dt * 1e3}, {"tok_per_s", tok_per_s},
                          {"grad_norm", r.grad_norm}};
    if (mfu >= 0) rec["mfu"] = mfu;
    metrics.write(rec);
    if (ctx.master() && ((step + 1) % t.log_every == 0 || step + 1 == num_iterations)) {
      std::cout << format_step(step + 1, num_iterations, smooth, lr_mult, dt, tok_per_s, mfu, eta) << std::endl;
    }
  }
  pg.barrier();  // rank 0 hosts the store: it leaves last
  say("done: " + std::to_string(num_iterations) + " steps, final " + format_eval(last_val) +
      "; checkpoint and metrics in " + dir);
  say("report (charts and a summary of this run): .venv/bin/python scripts/report.py " + dir);
  return 0;
}

}  // namespace hgpt::train
