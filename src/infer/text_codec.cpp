// text_codec.cpp — a run's tokenizer or the built-in corpus's bytes, behind one interface.
#include "hgpt/infer/text_codec.h"

#include "hgpt/data/synthetic.h"
#include "hgpt/errors.h"
#include "hgpt/files.h"
#include "hgpt/tokenizer/tokenizer.h"

#include <iostream>

namespace hgpt::infer {
namespace {

// A tokenizer given in place of the run's makes text, and bits per byte, that do not match what the
// model learned: refused when it is known to differ (other ranks than the run's own tokenizer, or a
// run that read bytes); a warning, once on stderr, when the run's cannot be compared.
void check_it_is_the_runs(const Config& config, const std::string& given) {
  if (given.empty()) return;
  const std::string& trained = config.train.tokenizer;
  const std::string ranks = "tokenizer.tiktoken";
  const std::string not_it = "--tokenizer '" + given + "' is not the tokenizer this model was trained with: ";
  if (trained.empty() && config.train.data == "synthetic")
    throw UserError(not_it + "the run read the built-in corpus's bytes, not tokens; leave --tokenizer out");
  std::string why;
  if (trained.empty()) {
    why = "the run recorded no tokenizer";
  } else if (!path_exists(path_join(trained, ranks))) {
    why = "the run's own tokenizer '" + trained + "' is gone, so it cannot be compared";
  } else if (read_file(path_join(trained, ranks), "ranks file") != read_file(path_join(given, ranks), "ranks file")) {
    throw UserError(not_it + "its ranks differ from those of the run's tokenizer '" + trained +
                    "'; leave --tokenizer out, or give a copy of that one");
  }
  if (!why.empty())
    std::cerr << "warning: --tokenizer '" << given << "' may not be the tokenizer this model was trained with: " << why
              << "; text in and out may not mean what the model learned" << std::endl;
}

}  // namespace

TextCodec TextCodec::for_run(const Config& config, const std::string& tokenizer_dir,
                             const std::string& trained_fingerprint) {
  const std::string dir = tokenizer_dir.empty() ? config.train.tokenizer : tokenizer_dir;
  TextCodec codec;  // bytes
  if (dir.empty()) {
    codec.knows_text_ = config.train.data == "synthetic";
    return codec;
  }
  codec.owned_ = std::make_shared<const tokenizer::Tokenizer>(tokenizer::Tokenizer::load(dir));
  codec.tokenizer_ = codec.owned_.get();
  const int64_t tokens = codec.tokenizer_->vocab_size();
  // A --tokenizer given to a trained model cannot change its vocab_size: that tokenizer is wrong.
  if (!tokenizer_dir.empty() && tokens > config.model.vocab_size) {
    throw UserError("--tokenizer '" + dir + "' has " + std::to_string(tokens) + " tokens, more than the model's " +
                    "vocab_size " + std::to_string(config.model.vocab_size) +
                    ", so it is not this model's tokenizer; give the one it was trained with" +
                    (config.train.tokenizer.empty() ? std::string()
                                                    : " ('" + config.train.tokenizer + "', or leave --tokenizer out)"));
  }
  if (trained_fingerprint.empty()) {
    check_it_is_the_runs(config, tokenizer_dir);  // a run from before fingerprints: by its path
  } else if (tokenizer::tokenizer_fingerprint(dir) != trained_fingerprint) {
    if (tokenizer_dir.empty())
      throw UserError("the run's tokenizer '" + dir + "' has changed since this model was trained (its files " +
                      "differ from those its run.json recorded): restore it, or give a copy of the original " +
                      "with --tokenizer");
    throw UserError(
        "--tokenizer '" + dir + "' is not the tokenizer this model was trained with: its files differ " +
        "from those its run.json recorded" +
        (config.train.tokenizer.empty() ? "" : "; leave --tokenizer out to use '" + config.train.tokenizer + "'"));
  }
  if (tokens > config.model.vocab_size) {
    throw UserError("config key 'vocab_size': " + std::to_string(config.model.vocab_size) +
                    " is smaller than the tokenizer's " + std::to_string(codec.tokenizer_->vocab_size()) +
                    " tokens in '" + dir + "'; set vocab_size to at least that");
  }
  return codec;
}

std::vector<uint32_t> TextCodec::encode_prompt(const std::string& text) const {
  if (!tokenizer_) {
    auto ids = data::encode_bytes(text);
    if (ids.empty() || ids.front() != data::kByteBos) ids.insert(ids.begin(), data::kByteBos);
    return ids;
  }
  auto ids = tokenizer_->encode(text);
  ids.insert(ids.begin(), tokenizer_->bos_id());
  return ids;
}

std::string TextCodec::decode(const std::vector<uint32_t>& ids) const {
  const int64_t vocab = tokenizer_ ? tokenizer_->vocab_size() : data::kByteVocab;
  std::vector<uint32_t> known;
  for (uint32_t id : ids) {
    if (id < vocab) known.push_back(id);
  }
  return tokenizer_ ? tokenizer_->decode(known) : data::decode_bytes(known);
}

uint32_t TextCodec::bos() const { return tokenizer_ ? tokenizer_->bos_id() : data::kByteBos; }

}  // namespace hgpt::infer
