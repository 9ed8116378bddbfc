// checkpoint_files.h — the names of a checkpoint's files inside a run folder, and of the
// optimizer state inside an optim file: the one place that spells them (docs/FORMATS.md).
// Free of LibTorch, like checkpoint_meta.h, so the meta reader it serves can be fuzzed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace hgpt::train {

std::string model_file_name(int64_t step);            // model_000010.pt
std::string meta_file_name(int64_t step);             // meta_000010.json
std::string optim_file_name(int64_t step, int rank);  // optim_000010_rank0.pt
std::string optim_file_prefix(int64_t step);          // optim_000010_rank: every rank's file of a step

// The step of a file named meta_<digits>.json, nullopt for any other name; UserError (naming the
// file) when the digits do not fit int64.
std::optional<int64_t> meta_file_step(const std::string& name);

// Whether a name is one of a checkpoint's files (of any step, temporary names included):
// a meta file, or a data file (model or optim).
bool is_meta_file(const std::string& name);
bool is_checkpoint_data_file(const std::string& name);

// Inside optim_*.pt, each tensor's key is its optimizer's prefix + the optimizer's own name.
inline constexpr std::string_view kMuonStatePrefix = "muon.";
inline constexpr std::string_view kAdamWStatePrefix = "adamw.";

}  // namespace hgpt::train
