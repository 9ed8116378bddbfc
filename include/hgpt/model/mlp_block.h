// mlp_block.h — an MLP layer on its own, as Megatron-LM counts layers: x += mlp(norm(x)),
// nanochat's relu² MLP. Block kind "mlp", pattern symbol '-' (Megatron-LM's),
// model/block_kinds.def. It keeps no inference state.
#pragma once

#include "hgpt/model/block.h"

namespace hgpt::model {

class MLPBlockImpl : public BlockImpl {
 public:
  explicit MLPBlockImpl(int64_t dim);
  at::Tensor forward(const at::Tensor& x, const LayerContext& context) override;
  void init_weights() override;
  char kind() const override { return '-'; }
  std::unique_ptr<LayerState> new_state(int64_t capacity) const override;

  MLP mlp{nullptr};
};
TORCH_MODULE(MLPBlock);

}  // namespace hgpt::model
