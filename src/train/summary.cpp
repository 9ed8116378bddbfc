// summary.cpp — the dry-run summary, and run.json (the same summary recorded in a run's folder).
#include "hgpt/train/summary.h"

#include "hgpt/errors.h"
#include "hgpt/files.h"
#include "hgpt/model/block_kinds.h"
#include "hgpt/model/hybrid_layer_pattern.h"
#include "hgpt/model/sizes.h"
#include "hgpt/tokenizer/tokenizer.h"

#include <nlohmann/json.hpp>

#include <unistd.h>

#include <cmath>
#include <sstream>

namespace hgpt::train {

int64_t resolve_num_iterations(const Config& c) {
  if (c.train.num_iterations > 0) return c.train.num_iterations;
  const double batch = static_cast<double>(c.train.total_batch_size);
  const char* key = c.train.target_flops > 0 ? "target_flops" : "target_param_data_ratio";
  double steps = 0;
  if (c.train.target_flops > 0) {
    steps = std::round(c.train.target_flops / (model::flops_per_token(c.model) * batch));
  } else {
    const double params = static_cast<double>(model::count_parameters(c.model).total);
    steps = std::floor(c.train.target_param_data_ratio * params / batch);
  }
  // Checked in double, before the conversion: a huge target would not fit int64.
  if (!(steps <= static_cast<double>(kMaxIterations))) {
    std::ostringstream msg;
    msg << "config key '" << key << "': gives " << steps << " optimizer steps, more than the " << kMaxIterations
        << " allowed; lower it or set num_iterations";
    throw UserError(msg.str());
  }
  return std::max<int64_t>(1, static_cast<int64_t>(steps));
}

nlohmann::json run_summary(const Config& c, int world_size, bool cuda) {
  const auto p = model::count_parameters(c.model);
  const auto flops = model::count_flops(c.model);
  const double fpt = flops.total;
  const int64_t iters = resolve_num_iterations(c);
  const auto mem = model::estimate_memory(c.model, c.train.device_batch_size, cuda);
  nlohmann::json s;
  s["model_tag"] = c.resolved_model_tag();
  s["block_pattern"] = c.model.block_pattern;
  s["depth"] = c.model.depth;
  s["model_dim"] = c.model.model_dim();
  s["n_head"] = c.model.n_head();
  s["n_kv_head"] = c.model.kv_heads();
  s["head_dim"] = c.model.attn_head_dim();
  s["vocab_size"] = c.model.vocab_size;
  s["parameters"] = p.total;
  nlohmann::json by_kind = nlohmann::json::object();
  for (const auto& [symbol, count] : p.blocks) by_kind[std::string(1, symbol)] = count;
  s["parameters_by_block"] = by_kind;
  s["parameters_embedding"] = p.embedding;
  s["parameters_lm_head"] = p.lm_head;
  nlohmann::json layers = nlohmann::json::object(), flops_by_kind = nlohmann::json::object();
  for (const auto& kind : model::block_kinds()) {
    const std::string symbol(1, kind.symbol);
    layers[symbol] = c.model.count(kind.symbol);
    flops_by_kind[symbol] = flops.blocks.at(kind.symbol);
  }
  s["layers_by_block"] = layers;
  if (c.model.count('S') > 0) s["attn_window"] = c.model.attn_window;
  if (const auto megatron = model::megatron_notation(c.model.block_pattern); megatron && !c.model.mamba_use_mlp)
    s["megatron_layers"] = *megatron;
  s["flops_per_token"] = fpt;
  s["flops_by_block"] = flops_by_kind;
  s["flops_lm_head"] = flops.lm_head;
  s["world_size"] = world_size;
  s["tokens_per_step"] = c.train.total_batch_size;
  s["tokens_per_micro_step"] = tokens_per_micro_step(c);
  s["grad_accum_steps"] = grad_accum_steps(c, world_size);
  s["num_iterations"] = iters;
  // In double: up to 10^12 steps of any batch size would overflow int64.
  const double training_tokens = static_cast<double>(iters) * static_cast<double>(c.train.total_batch_size);
  s["training_tokens"] = training_tokens;
  s["training_flops"] = fpt * training_tokens;
  s["tokens_per_parameter"] = training_tokens / static_cast<double>(p.total);
  s["estimated_memory_bytes"] = mem.total();
  s["estimated_memory"] = {{"weights", mem.weights},
                           {"grads", mem.grads},
                           {"optimizer", mem.optimizer},
                           {"activations", mem.activations},
                           {"activation_dtype", cuda ? "bf16" : "fp32"}};
  return s;
}

void check_fits_in_memory(const Config& c, bool cuda) {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page_bytes = ::sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page_bytes <= 0) return;  // unknown: let the allocator decide
  const double machine = static_cast<double>(pages) * static_cast<double>(page_bytes);
  const auto mem = model::estimate_memory(c.model, c.train.device_batch_size, cuda);
  const double needed = static_cast<double>(cuda ? mem.weights : mem.weights + mem.grads + mem.optimizer);
  if (needed <= machine) return;
  std::ostringstream msg;
  msg.precision(3);
  msg << "the model needs " << needed / double(1ull << 30) << " GiB for its "
      << (cuda ? "fp32 weights" : "weights, gradients and optimizer state") << " but this machine has "
      << machine / double(1ull << 30) << " GiB of memory; choose a smaller depth, aspect_ratio or vocab_size "
      << "(--dry-run prints the estimate)";
  throw UserError(msg.str());
}

namespace {
std::string human(double v, const char* unit) {
  const char* prefixes[] = {"", "K", "M", "G", "T", "P", "E"};
  int i = 0;
  while (std::fabs(v) >= 1000 && i < 6) v /= 1000, ++i;
  std::ostringstream out;
  out.precision(4);
  out << v << " " << prefixes[i] << unit;
  return out.str();
}
// "T blocks 786432, M blocks 466432, M2 blocks 512000": the kinds present, in registry order.
std::string blocks_text(const nlohmann::json& by_kind) {
  std::ostringstream out;
  for (const auto& kind : model::block_kinds()) {
    const std::string symbol(1, kind.symbol);
    if (by_kind.value(symbol, int64_t{0}) > 0)
      out << (out.tellp() > 0 ? ", " : " ") << kind.short_name << " blocks " << by_kind[symbol];
  }
  return out.str();
}
// "2 T, 1 SWA, 1 MLP": the layers of each kind present, in registry order.
std::string layers_text(const nlohmann::json& layers) {
  std::ostringstream out;
  for (const auto& kind : model::block_kinds()) {
    const auto n = layers.value(std::string(1, kind.symbol), int64_t{0});
    if (n > 0) out << (out.tellp() > 0 ? ", " : "") << n << " " << kind.short_name;
  }
  return out.str();
}
std::string gib(int64_t bytes) {
  std::ostringstream out;
  out.precision(3);
  out << bytes / double(1ull << 30) << " GiB";
  return out.str();
}
}  // namespace

std::string format_summary(const nlohmann::json& s) {
  std::ostringstream out;
  const auto& mem = s["estimated_memory"];
  out << "model " << s["model_tag"].get<std::string>() << ": depth " << s["depth"] << ", pattern "
      << s["block_pattern"].get<std::string>() << ", model_dim " << s["model_dim"] << ", heads " << s["n_head"]
      << " (kv " << s["n_kv_head"] << ", head_dim " << s["head_dim"] << "), vocab " << s["vocab_size"] << "\n"
      << "layers: " << layers_text(s["layers_by_block"]);
  if (s.contains("attn_window")) out << " (SWA window " << s["attn_window"] << ")";
  if (s.contains("megatron_layers"))
    out << " (Megatron-LM: " << s["megatron_layers"].get<std::string>() << ", M Mamba-2, * attention, - MLP)";
  out << "\n"
      << "parameters: " << s["parameters"] << " (" << human(s["parameters"].get<double>(), "") << ")"
      << " " << blocks_text(s["parameters_by_block"]) << ", wte " << s["parameters_embedding"] << ", lm_head "
      << s["parameters_lm_head"] << "\n"
      << "FLOPs per token: " << human(s["flops_per_token"].get<double>(), "FLOP") << "\n"
      << "tokens per step: " << s["tokens_per_step"] << " = " << s["tokens_per_micro_step"] << " per micro-step × "
      << s["grad_accum_steps"] << " accumulation step(s) × " << s["world_size"] << " rank(s)\n"
      << "iterations: " << s["num_iterations"] << " (" << human(s["training_tokens"].get<double>(), "tokens") << ", "
      << human(s["training_flops"].get<double>(), "FLOP") << ", " << s["tokens_per_parameter"].get<double>()
      << " tokens/parameter)\n"
      << "estimated training memory per rank: " << gib(s["estimated_memory_bytes"].get<int64_t>()) << " (weights "
      << gib(mem["weights"].get<int64_t>()) << ", grads " << gib(mem["grads"].get<int64_t>()) << ", optimizer "
      << gib(mem["optimizer"].get<int64_t>()) << ", activations " << gib(mem["activations"].get<int64_t>()) << " in "
      << mem["activation_dtype"].get<std::string>() << ")\n";
  return out.str();
}

void write_run_record(const std::string& run_dir, const nlohmann::json& summary, const Config& config,
                      const std::string& device) {
  nlohmann::json record = summary;
  record["config"] = config.to_json();
  record["device"] = device;
  if (!config.train.tokenizer.empty())
    record["tokenizer_fingerprint"] = tokenizer::tokenizer_fingerprint(config.train.tokenizer);
  write_file_atomic(path_join(run_dir, "run.json"), record.dump(2));
}

std::string recorded_tokenizer_fingerprint(const std::string& run_dir) {
  const std::string path = path_join(run_dir, "run.json");
  if (!path_exists(path) || is_directory(path)) return "";
  const auto record = nlohmann::json::parse(read_file(path, "run record"), nullptr, /*allow_exceptions=*/false);
  if (!record.is_object() || !record.contains("tokenizer_fingerprint")) return "";
  const auto& fingerprint = record["tokenizer_fingerprint"];
  return fingerprint.is_string() ? fingerprint.get<std::string>() : "";
}

}  // namespace hgpt::train
