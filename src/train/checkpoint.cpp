// checkpoint.cpp — atomic tensor-dict files, module state, finding the newest checkpoint.
#include "hgpt/train/checkpoint.h"

#include "hgpt/errors.h"
#include "hgpt/files.h"

#include <ATen/ATen.h>
#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/export.h>
#include <torch/csrc/jit/serialization/pickle.h>
#include <torch/csrc/jit/serialization/pickler.h>
#include <torch/nn/module.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <regex>
#include <sstream>

namespace hgpt::train {

std::string step_name(const char* prefix, int64_t step, const char* suffix) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%s_%06lld%s", prefix, static_cast<long long>(step), suffix);
  return buf;
}

std::string optim_name(int64_t step, int rank) {
  return step_name("optim", step, ("_rank" + std::to_string(rank) + ".pt").c_str());
}

// torch.save's zip format, written like torch::pickle_save but without the TorchScript type tags
// on the dict: torch.load's default weights_only unpickler (torch >= 2.6) refuses those tags.
void save_tensor_dict(const std::string& path, const TensorDict& dict) {
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
}

TensorDict load_tensor_dict(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UserError("cannot read checkpoint file '" + path + "'");
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  c10::IValue value;
  try {
    value = torch::jit::pickle_load(bytes);
  } catch (const std::exception& e) {
    throw UserError("checkpoint file '" + path + "' is not a readable tensor dict: " + e.what());
  }
  if (!value.isGenericDict()) throw UserError("checkpoint file '" + path + "' does not hold a dict");
  TensorDict out;
  for (const auto& item : value.toGenericDict()) {
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
  static const std::regex meta_re(R"(meta_(\d+)\.json)");
  for (const std::string& name : list_dir(dir)) {
    std::smatch m;
    if (std::regex_match(name, m, meta_re)) {
      const int64_t step = std::stoll(m[1].str());
      if (!best || step > *best) best = step;
    }
  }
  return best;
}

nlohmann::json read_meta(const std::string& dir, int64_t step) {
  const std::string path = path_join(dir, step_name("meta", step, ".json"));
  std::ifstream in(path);
  if (!in) throw UserError("cannot read '" + path + "'");
  try {
    return nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    throw UserError("'" + path + "' is not valid JSON: " + e.what());
  }
}

}  // namespace hgpt::train
