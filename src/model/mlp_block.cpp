// mlp_block.cpp — the MLP-only layer (mlp_block.h) and its sizes.
#include "hgpt/model/mlp_block.h"

#include "hgpt/model/transformer_block.h"

#include <ATen/ATen.h>

namespace hgpt::model {

namespace {
// Each token on its own: nothing to carry from one step to the next.
struct NoState : LayerState {
  int64_t bytes() const override { return 0; }
};
}  // namespace

MLPBlockImpl::MLPBlockImpl(int64_t dim) { mlp = register_module("mlp", MLP(dim)); }

at::Tensor MLPBlockImpl::forward(const at::Tensor& x, const LayerContext&) { return x + mlp(rms_norm(x)); }

void MLPBlockImpl::init_weights() { mlp->init_weights(); }

std::unique_ptr<LayerState> MLPBlockImpl::new_state(int64_t) const { return std::make_unique<NoState>(); }

std::shared_ptr<BlockImpl> make_mlp_block(const ModelConfig& c) { return MLPBlock(c.model_dim()).ptr(); }

BlockSizes mlp_block_sizes(const ModelConfig& c, bool cuda) { return mlp_layer_sizes(c, cuda); }

}  // namespace hgpt::model
