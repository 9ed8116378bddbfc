// hybrid_layer_pattern.cpp — Megatron-LM's layer notation and allocation (hybrid_layer_pattern.h).
#include "hgpt/model/hybrid_layer_pattern.h"

#include <cmath>

namespace hgpt::model {

namespace {
// Megatron's symbol and ours for each of its three layer kinds.
struct Translation {
  char megatron, ours;
};
constexpr Translation kKinds[] = {{'M', '2'}, {'*', '*'}, {'-', '-'}};

// Python's round(): to the nearest integer, halves to the even one (nearbyint in the default
// rounding mode).
int64_t python_round(double v) { return static_cast<int64_t>(std::nearbyint(v)); }

std::optional<std::string> translate(const std::string& text, bool to_ours) {
  std::string out;
  for (char ch : text) {
    char mapped = 0;
    for (const auto& kind : kKinds) {
      if (ch == (to_ours ? kind.megatron : kind.ours)) mapped = to_ours ? kind.ours : kind.megatron;
    }
    if (!mapped) return std::nullopt;
    out += mapped;
  }
  return out;
}
}  // namespace

std::string allocate_hybrid_layers(int64_t layers, double attention_ratio, double mlp_ratio) {
  std::string out(layers, 'M');
  // Attention: evenly between sections of Mamba layers, a section first and one last. x counts
  // down the Mamba layers still owed to the current section.
  const int64_t attention = python_round(layers * attention_ratio);
  int64_t mamba = layers - attention;
  const double section = static_cast<double>(mamba) / static_cast<double>(attention + 1);
  double x = section;
  for (int64_t l = 0; l < layers; ++l) {
    if (x < 0.5) {
      out[l] = '*';
      x += section;
    } else {
      x -= 1;
    }
  }
  // MLPs: among the Mamba layers, the same way (which right-justifies them).
  const int64_t mlp = python_round(layers * mlp_ratio);
  if (mlp > 0) {
    mamba -= mlp;
    const double per_mlp = static_cast<double>(mamba) / static_cast<double>(mlp);
    x = per_mlp;
    for (int64_t l = 0; l < layers; ++l) {
      if (out[l] != 'M') continue;
      if (x < 0.5) {
        out[l] = '-';
        x += per_mlp;
      } else {
        x -= 1;
      }
    }
  }
  return out;
}

std::optional<std::string> block_pattern_from_megatron(const std::string& megatron) {
  return translate(megatron, /*to_ours=*/true);
}

std::optional<std::string> megatron_notation(const std::string& block_pattern) {
  return translate(block_pattern, /*to_ours=*/false);
}

}  // namespace hgpt::model
