// sample — text from a trained checkpoint: rebuilds the model from the checkpoint's meta file,
// loads the run's tokenizer (or the built-in corpus's bytes), prefills the prompt and samples,
// streaming the text to stdout; tokens/s go to stderr at the end. Usage:
//   sample --checkpoint DIR [--step N] --prompt TEXT [--max_tokens 256] [--temperature 0.8]
//          [--top_k 50] [--top_p 1] [--seed 0] [--num_samples 1] [--device auto] [--tokenizer DIR]
#include "hgpt/cli.h"
#include "hgpt/cpu_memory.h"
#include "hgpt/errors.h"
#include "hgpt/infer/generate.h"
#include "hgpt/infer/text_codec.h"
#include "hgpt/train/context.h"
#include "hgpt/train/precision.h"
#include "hgpt/train/summary.h"
#include "hgpt/train/trained_model.h"

#include <cstdio>
#include <iostream>
#include <optional>
#include <string>

namespace {

int run(int argc, char** argv) {
  CLI::App app{"Generate text from a trained checkpoint"};
  std::string checkpoint, prompt, device_name = "auto", tokenizer_dir;
  std::optional<int64_t> step;
  hgpt::infer::GenerateOptions options;
  app.add_option("--checkpoint", checkpoint, "a run's checkpoint folder, <out_dir>/<model_tag>")->required();
  app.add_option("--step", step, "the checkpoint's step (default: the newest complete one)");
  app.add_option("--prompt", prompt, "text to continue (<|bos|> is put in front)")->required();
  app.add_option("--max_tokens", options.max_tokens, "most new tokens per sample")->capture_default_str();
  app.add_option("--temperature", options.sampling.temperature, "0: greedy")->capture_default_str();
  app.add_option("--top_k", options.sampling.top_k, "sample among the k most likely tokens (<= 0: all)")
      ->capture_default_str();
  app.add_option("--top_p", options.sampling.top_p, "then among the most likely tokens holding this mass")
      ->capture_default_str();
  app.add_option("--seed", options.sampling.seed, "sampling seed")->capture_default_str();
  app.add_option("--num_samples", options.num_samples, "samples of the prompt, generated as one batch")
      ->capture_default_str();
  app.add_option("--device", device_name, "auto, cpu or cuda")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  app.add_option("--tokenizer", tokenizer_dir, "tokenizer folder (default: the one the run used)");
  if (const auto stop = hgpt::parse_command_line(app, argc, argv)) return *stop;

  const at::Device device = hgpt::train::resolve_device(hgpt::parse_device_choice(device_name), 0);
  auto run = hgpt::train::load_trained_model(checkpoint, step, device);
  const auto codec =
      hgpt::infer::TextCodec::for_run(run.config, tokenizer_dir, hgpt::train::recorded_tokenizer_fingerprint(run.dir));
  if (!codec.knows_text()) {
    throw hgpt::UserError("the run read token shards ('" + run.config.train.data +
                          "') without a tokenizer, so its text is unknown; pass --tokenizer DIR");
  }
  options.stop_token = codec.bos();
  const auto ids = codec.encode_prompt(prompt);
  hgpt::infer::Engine engine(run.model);

  // One sample streams token by token (after the prompt, once generation has started, so a
  // refused prompt prints nothing); several are printed one after another at the end.
  const bool stream = options.num_samples == 1;
  bool started = false;
  hgpt::train::AutocastGuard autocast(hgpt::train::uses_autocast(device));
  const auto result = hgpt::infer::generate(engine, ids, options,
                                            [&](const std::vector<uint32_t>& tokens, const std::vector<bool>& running) {
                                              if (!stream) return;
                                              if (!started) std::cout << prompt, started = true;
                                              if (running[0] && tokens[0] != codec.bos())
                                                std::cout << codec.decode({tokens[0]}) << std::flush;
                                            });
  if (stream && !started) std::cout << prompt;
  if (stream) std::cout << "\n";
  for (size_t i = 0; !stream && i < result.tokens.size(); ++i) {
    std::cout << "--- sample " << i + 1 << "\n" << prompt << codec.decode(result.tokens[i]) << "\n";
  }
  std::cout << std::flush;

  int64_t generated = 0;
  for (const auto& t : result.tokens) generated += static_cast<int64_t>(t.size());
  if (result.hit_length_limit) {
    std::fprintf(stderr, "sample: stopped at max_seq_len %lld (prompt + tokens)\n",
                 static_cast<long long>(run.config.model.sequence_len));
  }
  std::fprintf(stderr,
               "sample: step %lld of %s | %lld tokens generated | prefill %lld tokens in %.3fs | decode %.1f tok/s\n",
               static_cast<long long>(run.step), checkpoint.c_str(), static_cast<long long>(generated),
               static_cast<long long>(result.prefill_tokens), result.prefill_seconds,
               result.decode_seconds > 0 ? result.decoded_tokens / result.decode_seconds : 0.0);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  hgpt::keep_freed_cpu_memory();
  return hgpt::run_tool([&] { return run(argc, argv); });
}
