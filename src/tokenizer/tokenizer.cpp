// tokenizer.cpp — the Tokenizer's tables (built from ranks + specials + pattern, validated), its
// accessors and decoding. Encoding (encode.cpp), training (train_bpe.cpp), the files
// (tokenizer_files.cpp) and the split regex (split_regex.cpp) live beside it.
#include "hgpt/tokenizer/tokenizer.h"

#include <stdexcept>

#include "hgpt/config.h"
#include "hgpt/errors.h"
#include "src/tokenizer/tokenizer_impl.h"

namespace hgpt::tokenizer {
namespace detail {

void TokenizerImpl::build_indexes(const std::string& source) {
  bytes_to_id.clear();
  bytes_to_id.reserve(id_bytes.size() * 2);
  bool have_byte[256] = {};
  for (size_t id = 0; id < id_bytes.size(); ++id) {
    if (!is_rank[id]) continue;
    const std::string& b = id_bytes[id];
    if (b.empty()) throw UserError(source + ": rank " + std::to_string(id) + " has an empty token");
    auto [it, inserted] = bytes_to_id.emplace(std::string_view(b), static_cast<uint32_t>(id));
    if (!inserted)
      throw UserError(source + ": ranks " + std::to_string(it->second) + " and " + std::to_string(id) +
                      " have the same bytes");
    if (b.size() == 1) {
      const auto c = static_cast<unsigned char>(b[0]);
      byte_id[c] = static_cast<uint32_t>(id);
      have_byte[c] = true;
    }
  }
  for (int c = 0; c < 256; ++c)
    if (!have_byte[c])
      throw UserError(source + ": no rank for the single byte " + std::to_string(c) +
                      "; byte-level BPE needs all 256 bytes");
  // A pair (left, right) merges into the token whose bytes are left + right: BPE always holds whole
  // tokens, so "lowest rank of the concatenation" (tiktoken's rule) is a lookup by the pair of ids.
  merges = PairMap<uint32_t>(bytes_to_id.size());
  for (size_t id = 0; id < id_bytes.size(); ++id) {
    if (!is_rank[id] || id_bytes[id].size() < 2) continue;
    const std::string_view b = id_bytes[id];
    for (size_t k = 1; k < b.size(); ++k) {
      auto l = bytes_to_id.find(b.substr(0, k));
      if (l == bytes_to_id.end()) continue;
      auto r = bytes_to_id.find(b.substr(k));
      if (r == bytes_to_id.end()) continue;
      merges[pair_key(l->second, r->second)] = static_cast<uint32_t>(id);
    }
  }
}

std::shared_ptr<TokenizerImpl> make_impl(std::vector<std::string> id_bytes, std::vector<uint8_t> is_rank,
                                         std::map<std::string, uint32_t> specials, const std::string& pattern,
                                         const std::string& source) {
  auto impl = std::make_shared<TokenizerImpl>();
  impl->pattern = pattern;
  impl->regex = std::make_unique<SplitRegex>(pattern);
  int64_t num_ranks = 0;
  for (size_t i = 0; i < is_rank.size(); ++i)
    if (is_rank[i]) num_ranks = static_cast<int64_t>(i) + 1;
  int64_t vocab = num_ranks;
  for (const auto& [name, id] : specials) {
    if (name.empty()) throw UserError(source + ": a special token has an empty name");
    if (id >= kMaxVocabSize)  // the id tables are dense
      throw UserError(source + ": special token " + name + " has id " + std::to_string(id) + "; ids must be below " +
                      std::to_string(kMaxVocabSize));
    if (id < is_rank.size() && is_rank[id])
      throw UserError(source + ": special token " + name + " has id " + std::to_string(id) +
                      ", which is already a mergeable rank");
    vocab = std::max<int64_t>(vocab, static_cast<int64_t>(id) + 1);
  }
  id_bytes.resize(vocab);
  is_rank.resize(vocab, 0);
  impl->special_name.assign(vocab, std::string());
  for (const auto& [name, id] : specials) {
    if (!impl->special_name[id].empty())
      throw UserError(source + ": special tokens " + impl->special_name[id] + " and " + name + " share id " +
                      std::to_string(id));
    impl->special_name[id] = name;
  }
  impl->id_bytes = std::move(id_bytes);
  impl->is_rank = std::move(is_rank);
  impl->specials = std::move(specials);
  impl->num_ranks = num_ranks;
  impl->vocab_size = vocab;
  impl->build_indexes(source);
  return impl;
}

}  // namespace detail

Tokenizer::Tokenizer(std::shared_ptr<const detail::TokenizerImpl> impl) : impl_(std::move(impl)) {}

std::string Tokenizer::decode(const std::vector<uint32_t>& ids) const {
  const detail::TokenizerImpl& t = *impl_;
  size_t total = 0;
  for (uint32_t id : ids) {
    if (id >= t.id_bytes.size() || (!t.is_rank[id] && t.special_name[id].empty()))
      throw std::out_of_range("decode: token id " + std::to_string(id) + " is not in the vocabulary (size " +
                              std::to_string(t.vocab_size) + ")");
    total += t.is_rank[id] ? t.id_bytes[id].size() : t.special_name[id].size();
  }
  std::string out;
  out.reserve(total);
  for (uint32_t id : ids) out += t.is_rank[id] ? t.id_bytes[id] : t.special_name[id];
  return out;
}

std::vector<std::string> Tokenizer::split(std::string_view text) const {
  std::vector<std::string_view> views;
  impl_->regex->split(text, views);
  return std::vector<std::string>(views.begin(), views.end());
}

uint32_t Tokenizer::bos_id() const {
  for (const char* name : {"<|bos|>", "<|endoftext|>"}) {
    auto it = impl_->specials.find(name);
    if (it != impl_->specials.end()) return it->second;
  }
  throw UserError("tokenizer has neither a <|bos|> nor an <|endoftext|> special token");
}

uint32_t Tokenizer::special_id(const std::string& name) const {
  auto it = impl_->specials.find(name);
  if (it == impl_->specials.end()) throw UserError("tokenizer has no special token " + name);
  return it->second;
}

const std::map<std::string, uint32_t>& Tokenizer::special_tokens() const { return impl_->specials; }
int64_t Tokenizer::vocab_size() const { return impl_->vocab_size; }
int64_t Tokenizer::num_ranks() const { return impl_->num_ranks; }
const std::string& Tokenizer::pattern() const { return impl_->pattern; }

const std::string& Tokenizer::token_bytes(uint32_t id) const {
  static const std::string kEmpty;
  return id < impl_->id_bytes.size() ? impl_->id_bytes[id] : kEmpty;
}

std::vector<int32_t> Tokenizer::token_byte_lengths() const {
  std::vector<int32_t> out(impl_->vocab_size, 0);
  for (int64_t id = 0; id < impl_->vocab_size; ++id)
    if (impl_->is_rank[id]) out[id] = static_cast<int32_t>(impl_->id_bytes[id].size());
  return out;
}

}  // namespace hgpt::tokenizer
