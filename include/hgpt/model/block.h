// block.h — the interface every block kind of HybridGPT implements (one file per kind, listed in
// model/block_kinds.def): one forward for training and inference, its init, its small
// parameters and its inference state. Its sizes come from the kind's <id>_block_sizes
// (model/block_registry.h).
#pragma once

#include "hgpt/model/layers.h"

#include <memory>
#include <string>
#include <vector>

namespace hgpt::model {

// One layer's state for incremental inference (a KV cache, a recurrent state), owned by the
// engine and handed back to the same block at every call.
class LayerState {
 public:
  virtual ~LayerState() = default;
  virtual int64_t bytes() const = 0;  // memory it holds (for a preallocated cache, all of it)

 protected:
  static int64_t bytes_of(const at::Tensor& t) { return t.defined() ? static_cast<int64_t>(t.nbytes()) : 0; }
};

// What a block's forward receives besides x.
struct LayerContext {
  Rotary rotary;                // tables from position 0 on, covering every position in use
  LayerState* state = nullptr;  // inference: this layer's state (see BlockImpl::new_state); training: null
  // document_boundaries "reset": (B, T) bool, true at each position that starts a document (its
  // BOS); undefined when documents cross. A block lets nothing reach such a position, or any after
  // it, from the positions before it (model/documents.h).
  at::Tensor doc_starts;
};

// A residual update of x (B, T, C). With a state: a fresh one (from new_state) is filled from the
// whole prompt (prefill); a filled one is continued by one token (decode) and left after it.
class BlockImpl : public torch::nn::Module {
 public:
  virtual at::Tensor forward(const at::Tensor& x, const LayerContext& context) = 0;
  // The block's own init; draws from the default generator.
  virtual void init_weights() = 0;
  // Its symbol in block_pattern (model/block_kinds.def).
  virtual char kind() const = 0;
  // Names (inside the block) of the parameters the optimizers give to AdamW at mamba_lr, without
  // weight decay, rather than to Muon.
  virtual std::vector<std::string> small_parameters() const { return {}; }
  // An empty inference state for a batch of sequences of up to `capacity` positions.
  virtual std::unique_ptr<LayerState> new_state(int64_t capacity) const = 0;
};

// A parameter a kind gives to AdamW at mamba_lr, without weight decay, rather than to Muon (a
// mixer's small tensors): its name inside the block and its element count, for the size estimates.
struct SmallParameter {
  std::string name;
  int64_t numel;
};

// The state a block gets back, as the type it made (a mismatch is a programming error).
template <class State>
State& state_as(LayerState* state) {
  auto* typed = dynamic_cast<State*>(state);
  TORCH_CHECK(typed, "a block was handed another kind's inference state");
  return *typed;
}

}  // namespace hgpt::model
