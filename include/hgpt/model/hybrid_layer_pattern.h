// hybrid_layer_pattern.h — Megatron-LM's notation for hybrid stacks, one character per layer:
// 'M' a Mamba-2 mixer, '*' an attention layer, '-' an MLP, each pre-normed with a residual (our
// pattern symbols '2' with mamba_use_mlp false, '*' and '-'), and its rule for spreading layer
// kinds over a depth (--hybrid-attention-ratio / --hybrid-mlp-ratio). Free of LibTorch, like the
// config code it serves.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace hgpt::model {

// Megatron-LM's allocation (mamba_hybrid_layer_allocation.py, _allocate_auto) of `layers` layers:
// round(layers · attention_ratio) attention layers spaced evenly with Mamba first and last, then
// round(layers · mlp_ratio) of the remaining Mamba layers turned into MLPs, spread evenly and
// right-justified. Python's round (half to even), as there. Returns the Megatron string.
std::string allocate_hybrid_layers(int64_t layers, double attention_ratio, double mlp_ratio);

// The block_pattern (our symbols) a Megatron string stands for; nullopt if it has a character
// other than M, * and -.
std::optional<std::string> block_pattern_from_megatron(const std::string& megatron);
// The Megatron string of a block_pattern, or nullopt if it has a kind that notation lacks
// (anything but Mamba-2, attention and MLP layers).
std::optional<std::string> megatron_notation(const std::string& block_pattern);

}  // namespace hgpt::model
