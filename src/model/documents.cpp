// documents.cpp — document ids and restarted decoding states (documents.h).
#include "hgpt/model/documents.h"

#include <ATen/ATen.h>

#include <vector>

namespace hgpt::model {

at::Tensor document_ids(const at::Tensor& doc_starts) { return doc_starts.to(at::kLong).cumsum(1); }

at::Tensor restart_where(const at::Tensor& state, const at::Tensor& doc_starts) {
  if (!doc_starts.defined()) return state;
  std::vector<int64_t> shape(state.dim(), 1);
  shape[0] = state.size(0);
  return state * doc_starts.reshape({-1}).logical_not().to(state.scalar_type()).view(shape);
}

}  // namespace hgpt::model
