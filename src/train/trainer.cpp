// trainer.cpp — the training loop (reads like nanochat's scripts/base_train.py).
#include "hgpt/train/trainer.h"

#include "hgpt/data/synthetic.h"
#include "hgpt/tokenizer/tokenizer.h"
#include "hgpt/errors.h"
#include "hgpt/files.h"
#include "hgpt/optim/schedule.h"
#include "hgpt/train/checkpoint.h"
#include "hgpt/train/evaluate.h"
#include "hgpt/train/metrics.h"
#include "hgpt/train/summary.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/core/grad_mode.h>
#include <ATen/detail/CUDAHooksInterface.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <tuple>

namespace hgpt::train {

// ---------------------------------------------------------------------------------------------
// Set-up: device, model, optimizers

std::vector<optim::Optimizer*> Optimizers::all() const { return {muon.get(), adamw.get()}; }

at::Device resolve_device(const std::string& device, int local_rank) {
  const bool have_cuda = at::hasCUDA() && at::detail::getCUDAHooks().deviceCount() > 0;
  if (device == "cuda" && !have_cuda) {
    throw UserError("config key 'device': \"cuda\" was asked for but no CUDA GPU is available; use \"cpu\" or \"auto\"");
  }
  if (device == "cpu" || !have_cuda) return at::Device(at::kCPU);
  return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(local_rank));
}

model::HybridGPT build_model(const Config& config, const at::Device& device) {
  at::manual_seed(config.train.seed);
  model::HybridGPT gpt(config.model);
  gpt->init_weights();
  gpt->to(device);
  return gpt;
}

namespace {
bool is_mamba_small(const std::string& name) {
  for (const char* suffix : {".mixer.A_log", ".mixer.D", ".mixer.conv1d.weight", ".mixer.conv1d.bias",
                             ".mixer.dt_proj.bias"}) {
    const std::string s(suffix);
    if (name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0) return true;
  }
  return false;
}
}  // namespace

Optimizers build_optimizers(model::HybridGPT& gpt, const Config& config, int rank, int world_size) {
  const auto& t = config.train;
  const double dim_scale = std::pow(static_cast<double>(config.model.model_dim()) / 768.0, -0.5);
  Optimizers o;
  o.owned_by_rank.resize(world_size);
  std::vector<int64_t> load(world_size, 0);
  std::vector<optim::NamedParam> matrices, embedding, unembedding, mamba_small;
  for (const auto& item : gpt->named_parameters(true)) {
    const std::string& name = item.key();
    optim::NamedParam p{name, item.value()};
    // Owner: the least-loaded rank so far (by elements), lowest rank on ties.
    const int owner = static_cast<int>(std::min_element(load.begin(), load.end()) - load.begin());
    load[owner] += p.param.numel();
    o.owned_by_rank[owner].push_back(p.param);
    std::vector<optim::NamedParam>* group = nullptr;
    if (name == "transformer.wte.weight") group = &embedding;
    else if (name == "lm_head.weight") group = &unembedding;
    else if (is_mamba_small(name)) group = &mamba_small;
    else if (name.rfind("transformer.h.", 0) == 0 && p.param.dim() == 2) group = &matrices;
    else TORCH_CHECK(false, "parameter '", name, "' has no optimizer group");
    if (owner == rank) group->push_back(p);
  }
  o.muon = std::make_unique<optim::Muon>(matrices, t.matrix_lr, 0.95);
  std::vector<optim::AdamWGroup> groups;
  for (auto [params, lr, decay] : {std::tuple{&embedding, t.embedding_lr * dim_scale, t.weight_decay},
                                   {&unembedding, t.unembedding_lr * dim_scale, t.weight_decay},
                                   {&mamba_small, t.mamba_lr, 0.0}}) {
    if (!params->empty()) groups.push_back({*params, lr, decay});
  }
  o.adamw = std::make_unique<optim::AdamW>(groups, 0.8, 0.95, 1e-10);
  return o;
}

void sync_params(const Optimizers& optimizers, dist::ProcessGroup& pg) {
  at::NoGradGuard no_grad;
  for (int owner = 0; owner < static_cast<int>(optimizers.owned_by_rank.size()); ++owner) {
    const auto& params = optimizers.owned_by_rank[owner];
    if (params.empty()) continue;
    std::vector<at::Tensor> flat_views;
    for (const auto& p : params) flat_views.push_back(p.reshape({-1}));
    at::Tensor flat = at::cat(flat_views);  // the owner's values; overwritten on the others
    pg.broadcast_(flat, owner);
    if (pg.rank() == owner) continue;
    int64_t offset = 0;
    for (const auto& p : params) {
      p.copy_(flat.narrow(0, offset, p.numel()).view_as(p));
      offset += p.numel();
    }
  }
}

// ---------------------------------------------------------------------------------------------
// One optimizer step

StepResult train_step(model::HybridGPT& gpt, Optimizers& optimizers, data::Loader& loader, int64_t accum,
                      const at::Device& device, dist::ProcessGroup& pg, double grad_clip, bool autocast) {
  double loss_sum = 0.0;
  for (int64_t micro = 0; micro < accum; ++micro) {
    const data::Batch batch = loader.next();
    at::Tensor loss;
    {
      AutocastGuard guard(autocast);
      loss = gpt->loss(batch.inputs.to(device), batch.targets.to(device));
    }
    loss_sum += loss.item<double>();
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
  result.grad_norm = grad_clip > 0 ? optim::clip_grad_norm(params, grad_clip) : 0.0;
  for (auto* opt : optimizers.all()) opt->step();
  if (pg.is_distributed()) sync_params(optimizers, pg);
  for (auto& p : params) p.mutable_grad() = at::Tensor();  // every gradient, owned or not
  return result;
}

// ---------------------------------------------------------------------------------------------
// The run

namespace {

std::atomic<int> g_stop_signal{0};
extern "C" void on_stop_signal(int sig) { g_stop_signal.store(sig); }

// Byte length of each token id for bits per byte; empty when unknown.
std::vector<int32_t> token_byte_lengths(const Config& config, const tokenizer::Tokenizer* tokenizer) {
  std::vector<int32_t> bytes;
  if (tokenizer) {
    bytes = tokenizer->token_byte_lengths();
  } else if (config.train.data == "synthetic") {
    bytes.assign(data::kByteVocab, 1);
    bytes[data::kByteBos] = 0;
  } else {
    return bytes;
  }
  bytes.resize(config.model.vocab_size, 0);  // padding rows never appear as targets
  return bytes;
}

std::string hex_encode(const at::Tensor& bytes_u8) {
  static const char* digits = "0123456789abcdef";
  const auto t = bytes_u8.contiguous();
  const auto* p = t.data_ptr<uint8_t>();
  std::string out;
  out.reserve(2 * t.numel());
  for (int64_t i = 0; i < t.numel(); ++i) out += digits[p[i] >> 4], out += digits[p[i] & 15];
  return out;
}

at::Tensor hex_decode(const std::string& hex) {
  auto t = at::empty({static_cast<int64_t>(hex.size() / 2)}, at::kByte);
  auto* p = t.data_ptr<uint8_t>();
  auto nibble = [](char c) { return static_cast<uint8_t>(c <= '9' ? c - '0' : c - 'a' + 10); };
  for (size_t i = 0; i + 1 < hex.size(); i += 2) p[i / 2] = static_cast<uint8_t>(nibble(hex[i]) << 4 | nibble(hex[i + 1]));
  return t;
}

struct RunContext {
  const Config& config;
  dist::ProcessGroup& pg;
  std::string dir;  // <out_dir>/<model_tag>
  bool master;
};

void save_checkpoint(const RunContext& ctx, int64_t step, model::HybridGPT& gpt, const Optimizers& optimizers,
                     const data::Loader& train_loader, const LossEma& ema, const nlohmann::json& val) {
  if (ctx.master) save_tensor_dict(path_join(ctx.dir, step_name("model", step, ".pt")), module_state(*gpt));
  TensorDict optim_state;
  for (const auto& [name, t] : optimizers.muon->state_dict()) optim_state.emplace_back("muon." + name, t);
  for (const auto& [name, t] : optimizers.adamw->state_dict()) optim_state.emplace_back("adamw." + name, t);
  save_tensor_dict(path_join(ctx.dir, optim_name(step, ctx.pg.rank())), optim_state);
  ctx.pg.barrier();  // every rank's files are in place before meta marks the checkpoint complete
  if (ctx.master) {
    nlohmann::json meta;
    meta["step"] = step;
    meta["world_size"] = ctx.pg.world_size();
    meta["config"] = ctx.config.to_json();
    meta["val"] = val;
    meta["loader"] = {{"train_position", train_loader.position()}};
    meta["loss_ema"] = ema.state();
    meta["rng_state_cpu"] = hex_encode(at::detail::getDefaultCPUGenerator().get_state());
    write_file_atomic(path_join(ctx.dir, step_name("meta", step, ".json")), meta.dump(2));
  }
  ctx.pg.barrier();
}

// Resumes model, optimizers, loader and EMA from the newest complete checkpoint; returns its step.
int64_t resume_checkpoint(const RunContext& ctx, model::HybridGPT& gpt, Optimizers& optimizers,
                          data::Loader& train_loader, LossEma& ema) {
  const auto step = latest_checkpoint(ctx.dir);
  if (!step) {
    throw UserError("resume=true but '" + ctx.dir + "' holds no complete checkpoint (meta_*.json); " +
                    "start without --resume=true or point out_dir/model_tag at a previous run");
  }
  const auto meta = read_meta(ctx.dir, *step);
  const int saved_world = meta.value("world_size", 1);
  if (saved_world != ctx.pg.world_size()) {
    throw UserError("the checkpoint at step " + std::to_string(*step) + " in '" + ctx.dir + "' was written by " +
                    std::to_string(saved_world) + " rank(s); resume it with the same number of ranks (now " +
                    std::to_string(ctx.pg.world_size()) + ")");
  }
  // The model architecture must match; training knobs may change on resume.
  const auto saved = meta.at("config");
  const auto now = ctx.config.to_json();
  for (const char* key : {"depth", "aspect_ratio", "head_dim", "n_kv_head", "vocab_size", "block_pattern",
                          "mamba_d_state", "mamba_d_conv", "mamba_expand", "mamba_use_mlp"}) {
    if (saved.at(key) != now.at(key)) {
      throw UserError(std::string("cannot resume: config key '") + key + "' is " + now.at(key).dump() +
                      " but the checkpoint was trained with " + saved.at(key).dump());
    }
  }
  const std::string model_file = path_join(ctx.dir, step_name("model", *step, ".pt"));
  load_module_state(*gpt, load_tensor_dict(model_file), model_file);
  const auto optim_state = load_tensor_dict(path_join(ctx.dir, optim_name(*step, ctx.pg.rank())));
  optim::StateDict muon_state, adamw_state;
  for (const auto& [name, t] : optim_state) {
    if (name.rfind("muon.", 0) == 0) muon_state.emplace_back(name.substr(5), t);
    else if (name.rfind("adamw.", 0) == 0) adamw_state.emplace_back(name.substr(6), t);
  }
  optimizers.muon->load_state_dict(muon_state);
  optimizers.adamw->load_state_dict(adamw_state);
  train_loader.set_position(meta.at("loader").at("train_position").get<int64_t>());
  ema.load(meta.at("loss_ema"));
  at::Generator cpu_generator = at::detail::getDefaultCPUGenerator();  // a handle to the global one
  cpu_generator.set_state(hex_decode(meta.at("rng_state_cpu").get<std::string>()));
  return *step;
}

// Samples of a barely trained model are arbitrary bytes: escape control characters so they
// cannot disturb the terminal (newlines show as \n).
std::string printable(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    if (c == '\n') {
      out += "\\n";
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

// Greedy continuations of a few prompts, decoded: the built-in corpus's task prompts (which carry
// their own <|bos|>), or plain-text prompts through the tokenizer.
void print_samples(model::HybridGPT& gpt, const tokenizer::Tokenizer* tokenizer, const at::Device& device, bool autocast) {
  std::vector<std::string> prompts = data::sample_prompts();
  if (tokenizer) {
    prompts = {"The capital of France is", "The chemical symbol of gold is",
               "If yesterday was Friday, then tomorrow will be"};
  }
  for (const auto& prompt : prompts) {
    std::vector<uint32_t> ids;
    if (tokenizer) {
      ids = tokenizer->encode(prompt);
      ids.insert(ids.begin(), tokenizer->bos_id());
    } else {
      ids = data::encode_bytes(prompt);
    }
    const auto out = greedy_continue(gpt, ids, 24, device, autocast);
    std::string text;
    if (tokenizer) {  // a padded vocab can sample ids the tokenizer does not have: drop them
      std::vector<uint32_t> known;
      for (uint32_t id : out) {
        if (id < tokenizer->vocab_size()) known.push_back(id);
      }
      text = tokenizer->decode(known);
    } else {
      text = data::decode_bytes(out);
    }
    std::cout << "sample: " << printable(prompt) << " ⟶ " << printable(text) << std::endl;
  }
}

nlohmann::json eval_record(const EvalResult& r) {
  nlohmann::json j;
  j["val_loss"] = r.loss;
  if (r.bpb >= 0) j["val_bpb"] = r.bpb;
  for (int t = 0; t < data::kNumTasks; ++t) {
    if (r.tasks.total[t] > 0) {
      j[std::string("acc_") + data::task_name(static_cast<data::Task>(t + 1))] = r.tasks.accuracy(t);
    }
  }
  return j;
}

std::string format_eval(const nlohmann::json& j) {
  std::ostringstream out;
  out.precision(4);
  out << "val loss " << std::fixed << j.value("val_loss", 0.0);
  if (j.contains("val_bpb")) out << " | bpb " << j["val_bpb"].get<double>();
  for (const auto& [key, v] : j.items()) {
    if (key.rfind("acc_", 0) == 0) out << " | " << key << " " << v.get<double>();
  }
  return out.str();
}

}  // namespace

int run_training(const Config& config, dist::ProcessGroup& pg, int local_rank) {
  const auto& t = config.train;
  const bool master = pg.rank() == 0;
  auto say = [&](const std::string& line) {
    if (master) std::cout << line << std::endl;
  };
  const at::Device device = resolve_device(t.device, local_rank);
  const bool cuda = device.is_cuda();
  const bool autocast = cuda;  // bf16 autocast over fp32 weights on GPUs, plain fp32 on CPUs

  // Data, tokenizer, sizes --------------------------------------------------------------------
  std::unique_ptr<tokenizer::Tokenizer> tokenizer;
  if (!t.tokenizer.empty()) {
    tokenizer = std::make_unique<tokenizer::Tokenizer>(tokenizer::Tokenizer::load(t.tokenizer));
    if (tokenizer->vocab_size() > config.model.vocab_size) {
      throw UserError("config key 'vocab_size': " + std::to_string(config.model.vocab_size) +
                      " is smaller than the tokenizer's " + std::to_string(tokenizer->vocab_size()) + " tokens in '" +
                      t.tokenizer + "'; set vocab_size to at least that");
    }
  }
  const int64_t accum = grad_accum_steps(config, pg.world_size());
  const int64_t num_iterations = resolve_num_iterations(config);
  data::LoaderSpec spec{t.data, "train", t.device_batch_size, config.model.sequence_len, config.model.vocab_size,
                        t.seed, pg.rank(), pg.world_size()};
  data::Loader train_loader(spec);
  spec.split = "val";
  data::Loader val_loader(spec);  // validated now, so bad data stops the run before any training
  const int64_t tokens_per_eval_step = t.device_batch_size * config.model.sequence_len * pg.world_size();
  const int64_t eval_steps = std::max<int64_t>(1, t.eval_tokens / tokens_per_eval_step);
  const auto token_bytes = token_byte_lengths(config, tokenizer.get());

  // Model and optimizers ----------------------------------------------------------------------
  model::HybridGPT gpt = build_model(config, device);
  Optimizers optimizers = build_optimizers(gpt, config, pg.rank(), pg.world_size());
  const double flops_per_token = model::flops_per_token(config.model);
  const double peak = peak_flops_for(device_name(cuda, device.index()), t.peak_flops) * pg.world_size();

  RunContext ctx{config, pg, path_join(t.out_dir, config.resolved_model_tag()), master};
  if (master) make_dirs(ctx.dir);
  LossEma ema;
  int64_t start_step = 0;
  if (t.resume) {
    start_step = resume_checkpoint(ctx, gpt, optimizers, train_loader, ema);
    say("resumed from " + ctx.dir + " at step " + std::to_string(start_step));
  }
  MetricsWriter metrics;
  if (master) metrics.open(path_join(ctx.dir, "metrics.jsonl"));

  {
    std::ostringstream head;
    head << "device " << device << " (" << device_name(cuda, device.index()) << "), " << pg.world_size()
         << " rank(s), backend " << pg.backend_name() << "\n"
         << format_summary(run_summary(config, pg.world_size(), cuda)) << "checkpoints and metrics: " << ctx.dir;
    say(head.str());
  }

  // Samples need a way to turn text into tokens and back: the byte corpus or a tokenizer.
  const bool can_sample = tokenizer || t.data == "synthetic";
  if (t.sample_every > 0 && !can_sample) say("no samples: token shards without a tokenizer cannot be decoded (set tokenizer)");

  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);

  // The loop: step counts finished optimizer steps; eval/sample/save happen before step `step`.
  nlohmann::json last_val;
  double train_seconds = 0.0;
  int64_t timed_steps = 0;
  for (int64_t step = start_step;; ++step) {
    const bool last_step = step == num_iterations;

    if (last_step || (t.eval_every > 0 && step % t.eval_every == 0)) {
      val_loader.set_position(0);
      const auto result = evaluate(gpt, val_loader, eval_steps, device, pg, token_bytes, autocast);
      last_val = eval_record(result);
      say("step " + std::to_string(step) + "/" + std::to_string(num_iterations) + " | " + format_eval(last_val));
      nlohmann::json rec = last_val;
      rec["step"] = step;
      metrics.write(rec);
    }
    if (master && can_sample && t.sample_every > 0 && (last_step || step % t.sample_every == 0)) {
      print_samples(gpt, tokenizer.get(), device, autocast);
    }
    const bool save_now = step > start_step && (last_step || (t.save_every > 0 && step % t.save_every == 0));
    if (save_now) {
      save_checkpoint(ctx, step, gpt, optimizers, train_loader, ema, last_val);
      say("saved checkpoint " + path_join(ctx.dir, step_name("model", step, ".pt")));
    }
    if (last_step) break;

    // Interrupted: every rank learns whether any rank got SIGINT or SIGTERM (one all-reduce of
    // #SIGINT + 65536·#SIGTERM, exact in a double), so all save this step and exit alike.
    const int signal_here = g_stop_signal.load();
    double signals = (signal_here == SIGINT ? 1.0 : 0.0) + (signal_here == SIGTERM ? 65536.0 : 0.0);
    if (pg.is_distributed()) signals = pg.all_reduce_sum(signals);
    if (signals != 0) {
      if (!save_now) save_checkpoint(ctx, step, gpt, optimizers, train_loader, ema, last_val);
      say("interrupted at step " + std::to_string(step) + ": checkpoint in " + ctx.dir +
          "; continue with the same command plus --resume=true");
      const bool any_sigint = std::fmod(signals, 65536.0) > 0;
      return 128 + (any_sigint ? SIGINT : SIGTERM);
    }

    // Training step ---------------------------------------------------------------------------
    const auto t0 = std::chrono::steady_clock::now();
    const double lr_mult = optim::lr_multiplier(step, num_iterations, t.warmup_ratio, t.warmdown_ratio, t.final_lr_frac);
    for (auto* opt : optimizers.all()) opt->set_lr_mult(lr_mult);
    optimizers.muon->set_momentum(optim::muon_momentum(step));
    const StepResult r = train_step(gpt, optimizers, train_loader, accum, device, pg, t.grad_clip, autocast);
    if (cuda) at::detail::getCUDAHooks().deviceSynchronize(device.index());
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    const double smooth = ema.update(r.loss);
    if (step - start_step >= 1) train_seconds += dt, ++timed_steps;  // the first step warms up
    const double tok_per_s = t.total_batch_size / dt;
    const double mfu = peak > 0 ? 100.0 * flops_per_token * tok_per_s / peak : -1.0;
    const double eta = (timed_steps ? train_seconds / timed_steps : dt) * (num_iterations - step - 1);
    if (!std::isfinite(r.loss)) {
      throw std::runtime_error("training loss became " + std::to_string(r.loss) + " at step " + std::to_string(step) +
                               "; lower the learning rates or check the data");
    }
    nlohmann::json rec = {{"step", step + 1}, {"loss", r.loss}, {"loss_ema", smooth}, {"lr_mult", lr_mult},
                          {"dt_ms", dt * 1e3}, {"tok_per_s", tok_per_s}, {"grad_norm", r.grad_norm}};
    if (mfu >= 0) rec["mfu"] = mfu;
    metrics.write(rec);
    if (master && ((step + 1) % t.log_every == 0 || step + 1 == num_iterations)) {
      char mfu_text[32] = "";
      if (mfu >= 0) std::snprintf(mfu_text, sizeof(mfu_text), " | mfu %.2f%%", mfu);
      char line[256];
      std::snprintf(line, sizeof(line),
                    "step %05lld/%05lld | loss %.6f | lrm %.2f | dt %.1fms | tok/s %.0f%s | eta %s",
                    static_cast<long long>(step + 1), static_cast<long long>(num_iterations), smooth, lr_mult,
                    dt * 1e3, tok_per_s, mfu_text, format_duration(eta).c_str());
      std::cout << line << std::endl;
    }
  }
  pg.barrier();  // rank 0 hosts the store: it leaves last
  say("done: " + std::to_string(num_iterations) + " steps, final " + format_eval(last_val) + "; checkpoint and metrics in " + ctx.dir);
  return 0;
}

}  // namespace hgpt::train
