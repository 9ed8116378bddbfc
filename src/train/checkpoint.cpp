// checkpoint.cpp — atomic tensor-dict files, module state, finding the newest checkpoint, and a
// run's save and resume.
#include "hgpt/train/checkpoint.h"

#include "hgpt/config.h"
#include "hgpt/data/loader.h"
#include "hgpt/dist/process_group.h"
#include "hgpt/errors.h"
#include "hgpt/files.h"
#include "hgpt/strings.h"
#include "hgpt/train/checkpoint_meta.h"
#include "hgpt/train/context.h"
#include "hgpt/train/metrics.h"
#include "hgpt/train/optimizers.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/export.h>
#include <torch/csrc/jit/serialization/pickle.h>
#include <torch/csrc/jit/serialization/pickler.h>
#include <torch/nn/module.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>

namespace hgpt::train {

// torch.save's zip format, written like torch::pickle_save but without the TorchScript type tags
// on the dict: torch.load's default weights_only unpickler (torch >= 2.6) refuses those tags.
std::string save_tensor_dict(const std::string& path, const TensorDict& dict) {
  c10::Dict<std::string, at::Tensor> d;
  for (const auto& [name, t] : dict) d.insert(name, t.detach().to(at::kCPU).contiguous());
  std::vector<char> pickle_bytes;
  torch::jit::Pickler pickler([&](const char* b, size_t n) { pickle_bytes.insert(pickle_bytes.end(), b, b + n); },
                              /*tensor_table=*/nullptr, /*type_renamer=*/nullptr, /*memoized_class_types=*/nullptr,
                              /*get_tensor_id=*/nullptr, /*tag_aggregates=*/false);
  pickler.protocol();
  pickler.pushIValue(c10::IValue(d));
  pickler.stop();
  std::string archive;
  caffe2::serialize::PyTorchStreamWriter writer([&](const void* data, size_t n) {
    archive.append(static_cast<const char*>(data), n);
    return n;
  });
  torch::jit::writeArchiveAndTensors("data", pickle_bytes.data(), pickle_bytes.size(), pickler.tensorData(), writer);
  writer.writeEndOfFile();
  write_file_atomic(path, archive);
  return fnv1a64_hex(archive);
}

TensorDict load_tensor_dict(const std::string& path, const std::string& checksum) {
  if (is_directory(path)) throw UserError("checkpoint file '" + path + "' is a folder, not a file");
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw UserError("cannot read checkpoint file '" + path + "': " + std::strerror(errno) +
                    "; if that checkpoint is lost, remove its meta_*.json file to use the one before it");
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!checksum.empty() && fnv1a64_hex(std::string_view(bytes.data(), bytes.size())) != checksum) {
    throw UserError("checkpoint file '" + path + "' does not match the checksum in its meta file: its bytes " +
                    "changed after it was written (a damaged disk or copy); use another checkpoint or a good copy");
  }
  const std::string unreadable =
      "checkpoint file '" + path + "' is not a readable tensor dict (truncated or corrupt?): ";
  c10::IValue value;
  try {
    value = torch::jit::pickle_load(bytes);
  } catch (const c10::Error& e) {  // its what() carries a C++ stack trace: keep the one-line message
    throw UserError(unreadable + e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw UserError(unreadable + e.what());
  }
  if (!value.isGenericDict()) throw UserError("checkpoint file '" + path + "' does not hold a dict");
  TensorDict out;
  for (const auto& item : value.toGenericDict()) {
    if (!item.key().isString() || !item.value().isTensor())
      throw UserError(unreadable + "an entry is not a name → tensor pair");
    out.emplace_back(item.key().toStringRef(), item.value().toTensor());
  }
  return out;
}

TensorDict module_state(const torch::nn::Module& module) {
  TensorDict out;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) out.emplace_back(item.key(), item.value());
  for (const auto& item : module.named_buffers(/*recurse=*/true)) out.emplace_back(item.key(), item.value());
  return out;
}

void load_module_state(torch::nn::Module& module, const TensorDict& state, const std::string& source) {
  std::map<std::string, at::Tensor> by_name(state.begin(), state.end());
  at::NoGradGuard no_grad;
  auto copy_into = [&](const std::string& name, at::Tensor& target) {
    auto it = by_name.find(name);
    if (it == by_name.end()) throw UserError(source + ": missing tensor '" + name + "'");
    if (it->second.sizes() != target.sizes()) {
      std::ostringstream msg;
      msg << source << ": tensor '" << name << "' has shape " << it->second.sizes() << ", the model expects "
          << target.sizes() << " (was it saved with another config?)";
      throw UserError(msg.str());
    }
    if (target.is_floating_point() && !it->second.is_floating_point()) {
      throw UserError(source + ": tensor '" + name + "' holds " + std::string(c10::toString(it->second.scalar_type())) +
                      " values, the model's are " + c10::toString(target.scalar_type()) +
                      " (not a checkpoint of this model)");
    }
    if (it->second.is_floating_point() && !at::isfinite(it->second).all().item<bool>())
      throw UserError(source + ": tensor '" + name + "' holds NaN or infinite values; use an earlier checkpoint");
    target.copy_(it->second);
    by_name.erase(it);
  };
  for (auto& item : module.named_parameters(true)) copy_into(item.key(), item.value());
  for (auto& item : module.named_buffers(true)) copy_into(item.key(), item.value());
  if (!by_name.empty()) throw UserError(source + ": unexpected tensor '" + by_name.begin()->first + "'");
}

std::optional<int64_t> latest_checkpoint(const std::string& dir) {
  std::optional<int64_t> best;
  if (!is_directory(dir)) return best;
  for (const std::string& name : list_dir(dir)) {
    const auto step = meta_file_step(name);  // UserError when the digits overflow int64
    if (step && (!best || *step > *best)) best = step;
  }
  return best;
}

nlohmann::json read_meta(const std::string& dir, int64_t step) {
  const std::string path = path_join(dir, meta_file_name(step));
  if (is_directory(path)) throw UserError("'" + path + "' is a folder, not a checkpoint's meta file: remove it");
  std::ifstream in(path);
  if (!in) throw UserError("cannot read '" + path + "': " + std::strerror(errno));
  try {
    return nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    throw UserError("'" + path + "' is not valid JSON: " + e.what());
  }
}

// ---------------------------------------------------------------------------------------------
// A run's checkpoints

namespace {

// The CPU generator's state as raw bytes, and back (meta_*.json carries it as hex).
std::string cpu_rng_state() {
  const at::Tensor state = at::detail::getDefaultCPUGenerator().get_state().contiguous();
  return std::string(reinterpret_cast<const char*>(state.data_ptr<uint8_t>()), static_cast<size_t>(state.numel()));
}

void set_cpu_rng_state(const std::string& bytes) {
  at::Tensor state = at::empty({static_cast<int64_t>(bytes.size())}, at::kByte);
  std::memcpy(state.data_ptr<uint8_t>(), bytes.data(), bytes.size());
  at::Generator cpu_generator = at::detail::getDefaultCPUGenerator();  // a handle to the global one
  cpu_generator.set_state(state);
}

// Weights that are NaN or infinite must never become a checkpoint: resuming from it could only fail.
void require_finite(const TensorDict& weights, int64_t step) {
  for (const auto& [name, t] : weights) {
    if (t.is_floating_point() && !at::isfinite(t).all().item<bool>()) {
      throw UserError("the weights after step " + std::to_string(step) + " are not finite (tensor '" + name +
                      "'); no checkpoint was written: lower the learning rates (or set grad_clip) and resume from "
                      "the last checkpoint");
    }
  }
}

// The optimizer state of a checkpoint written by `written_by` ranks, for the parameters this rank
// owns now. At the same world size that is this rank's own file. At another one the state is
// re-sharded: every rank's file is read (each parameter's state sits in its owner's file, the step
// counters in all of them), and each optimizer takes the keys it holds at the new size (ZeRO-1
// owners are chosen by size for the world size, optimizers.h). Errors name the file.
void load_optimizer_state(const std::string& dir, int64_t step, int written_by, int rank, int world_size,
                          Optimizers& optimizers) {
  std::vector<std::string> files;
  if (written_by == world_size) {
    files.push_back(path_join(dir, optim_file_name(step, rank)));
  } else {
    for (int r = 0; r < written_by; ++r) files.push_back(path_join(dir, optim_file_name(step, r)));
  }
  std::map<std::string, at::Tensor> muon_all, adamw_all;
  for (const std::string& path : files) {
    for (const auto& [name, t] : load_tensor_dict(path)) {
      const bool muon = starts_with(name, kMuonStatePrefix), adamw = starts_with(name, kAdamWStatePrefix);
      if (!muon && !adamw) continue;
      auto& into = muon ? muon_all : adamw_all;
      const std::string key = name.substr((muon ? kMuonStatePrefix : kAdamWStatePrefix).size());
      const auto [it, added] = into.emplace(key, t);
      if (!added && (key != "step" || !at::equal(it->second, t)))
        throw UserError(path + ": optimizer state '" + name + "' is also in another rank's file" +
                        (key == "step" ? " with another step count" : "") + "; the checkpoint is damaged");
    }
  }
  // The keys each optimizer holds here (its owned parameters' state and its step), from those read.
  auto owned = [](const optim::Optimizer& opt, const std::map<std::string, at::Tensor>& all) {
    optim::StateDict out;
    for (const auto& [key, live] : opt.state_dict()) {
      const auto it = all.find(key);
      if (it != all.end()) out.emplace_back(key, it->second);
    }
    return out;
  };
  const bool resharded = written_by != world_size;
  const std::string source =
      resharded ? "the optimizer files of step " + std::to_string(step) + " in " + dir : files[0];
  try {
    optimizers.muon->load_state_dict(resharded ? owned(*optimizers.muon, muon_all)
                                               : optim::StateDict(muon_all.begin(), muon_all.end()));
    optimizers.adamw->load_state_dict(resharded ? owned(*optimizers.adamw, adamw_all)
                                                : optim::StateDict(adamw_all.begin(), adamw_all.end()));
  } catch (const UserError& e) {
    throw UserError(source + ": " + e.what());
  }
}

// The loader position at `world_size` ranks of `batch` rows that continues where a checkpoint's
// (`position` at `written_by` ranks of `written_batch` rows) stopped: the same number of rows read.
int64_t loader_position_for(int64_t position, int written_by, int64_t written_batch, int world_size, int64_t batch,
                            const std::string& meta_file) {
  int64_t rows = 0;  // position ≤ 2^40 (meta), but a world size and batch of a damaged file could overflow
  if (__builtin_mul_overflow(position, static_cast<int64_t>(written_by) * written_batch, &rows))
    throw UserError("checkpoint meta file '" + meta_file + "': its loader position and layout overflow int64");
  const int64_t rows_per_position = static_cast<int64_t>(world_size) * batch;
  if (rows % rows_per_position != 0) {
    throw UserError("cannot resume '" + meta_file + "' on " + std::to_string(world_size) + " rank(s) of " +
                    std::to_string(batch) + " rows: it read " + std::to_string(rows) +
                    " rows, not a whole number of micro-steps here; resume with a world size and " +
                    "device_batch_size that divide it (it was written by " + std::to_string(written_by) +
                    " rank(s) of " + std::to_string(written_batch) + ")");
  }
  return rows / rows_per_position;
}

}  // namespace

void save_checkpoint(const Context& ctx, int64_t step, const TrainState& state, const nlohmann::json& val) {
  const std::string dir = ctx.run_dir();
  const TensorDict weights = module_state(*state.model);
  require_finite(weights, step);  // on every rank (the weights are the same everywhere): all stop alike
  std::string model_checksum;
  if (ctx.master()) model_checksum = save_tensor_dict(path_join(dir, model_file_name(step)), weights);
  TensorDict optim_state;
  for (const auto& [name, t] : state.optimizers.muon->state_dict())
    optim_state.emplace_back(std::string(kMuonStatePrefix) + name, t);
  for (const auto& [name, t] : state.optimizers.adamw->state_dict())
    optim_state.emplace_back(std::string(kAdamWStatePrefix) + name, t);
  save_tensor_dict(path_join(dir, optim_file_name(step, ctx.pg.rank())), optim_state);
  ctx.pg.barrier();  // every rank's files are in place before meta marks the checkpoint complete
  if (ctx.master()) {
    nlohmann::json meta;
    meta["step"] = step;
    meta["world_size"] = ctx.pg.world_size();
    meta["config"] = ctx.config.to_json();
    meta["val"] = val;
    meta["loader"] = {{"train_position", state.train_loader.position()}};
    meta["loss_ema"] = state.ema.state();
    meta["rng_state_cpu"] = hex_encode(cpu_rng_state());
    meta["model_checksum"] = model_checksum;
    write_file_atomic(path_join(dir, meta_file_name(step)), meta.dump(2));
  }
  ctx.pg.barrier();
}

int64_t resume_checkpoint(const Context& ctx, const TrainState& state) {
  const std::string dir = ctx.run_dir();
  const auto step = latest_checkpoint(dir);
  if (!step) {
    throw UserError("resume=true but '" + dir + "' holds no complete checkpoint (meta_*.json); " +
                    "start without --resume=true or point out_dir/model_tag at a previous run");
  }
  // Everything is checked before anything is restored.
  const CheckpointMeta meta = read_checkpoint_meta(dir, *step);
  const std::string meta_file = path_join(dir, meta_file_name(*step));
  // Another world size (or device_batch_size) continues from the same rows: see loader_position_for.
  const auto written_batch = meta.config.find("device_batch_size");
  if (written_batch == meta.config.end() || !written_batch->is_number_integer() || written_batch->get<int64_t>() < 1)
    throw UserError("checkpoint meta file '" + meta_file +
                    "': key 'config.device_batch_size' is missing or not a positive integer");
  const int64_t position = loader_position_for(meta.train_position, meta.world_size, written_batch->get<int64_t>(),
                                               ctx.pg.world_size(), ctx.config.train.device_batch_size, meta_file);
  // The model architecture must match; training knobs may change on resume.
  const auto now = ctx.config.to_json();
  for (const std::string& key : architecture_keys()) {
    if (!meta.config.contains(key))
      throw UserError("checkpoint meta file '" + meta_file + "': key 'config." + key + "' is missing");
    if (meta.config[key] != now.at(key)) {
      throw UserError("cannot resume: config key '" + key + "' is " + now.at(key).dump() +
                      " but the checkpoint was trained with " + meta.config[key].dump());
    }
  }
  const size_t rng_bytes = cpu_rng_state().size();
  if (meta.rng_state_cpu.size() != rng_bytes) {
    throw UserError("checkpoint meta file '" + meta_file + "': key 'rng_state_cpu' holds " +
                    std::to_string(meta.rng_state_cpu.size()) + " bytes, the CPU generator's state is " +
                    std::to_string(rng_bytes) +
                    "; the file is damaged: delete it to resume from the checkpoint before");
  }
  const std::string model_file = path_join(dir, model_file_name(*step));
  const TensorDict weights = load_tensor_dict(model_file, meta.model_checksum);
  load_module_state(*state.model, weights, model_file);
  load_optimizer_state(dir, *step, meta.world_size, ctx.pg.rank(), ctx.pg.world_size(), state.optimizers);
  state.train_loader.set_position(position);
  state.ema.load({{"ema", meta.loss_ema}, {"count", meta.loss_ema_count}});
  set_cpu_rng_state(meta.rng_state_cpu);
  return *step;
}

}  // namespace hgpt::train
