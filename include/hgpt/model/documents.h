// documents.h — document boundaries inside a packed row (document_boundaries "reset"): which
// positions share a document, and the decoding states that restart at a document's first token.
// Every position from a start (a BOS) up to the next start is one document; positions before a
// row's first start form one more (a document cut at the row's edge).
#pragma once

#include <ATen/core/Tensor.h>

namespace hgpt::model {

// (B, T) int64: the number of document starts at or before each position, so two positions share a
// document exactly when their ids are equal.
at::Tensor document_ids(const at::Tensor& doc_starts);

// A decoding state (B, ...) zeroed in the rows whose current token starts a document
// (doc_starts (B, 1)); returned unchanged when doc_starts is undefined.
at::Tensor restart_where(const at::Tensor& state, const at::Tensor& doc_starts);

}  // namespace hgpt::model
