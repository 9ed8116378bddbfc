// evaluate — base_train's validation (loss, bits per byte, the built-in corpus's task
// accuracies) on any checkpoint, through the trainer's own evaluate(): for the step of a
// single-process run, on the same device and thread count, it prints exactly the numbers
// base_train logged. --seq_len evaluates on rows of another length (longer ones too: length
// extrapolation; base_train's extrapolate_to logs the same numbers). Usage:
//   evaluate --checkpoint DIR [--step N] [--data DIR] [--eval_tokens N] [--seq_len N]
//            [--tokenizer DIR] [--device D] [--json]
#include "hgpt/train/evaluate.h"
#include "hgpt/cli.h"
#include "hgpt/config.h"
#include "hgpt/cpu_memory.h"
#include "hgpt/data/loader.h"
#include "hgpt/dist/process_group.h"
#include "hgpt/errors.h"
#include "hgpt/infer/text_codec.h"
#include "hgpt/train/context.h"
#include "hgpt/train/summary.h"
#include "hgpt/train/trained_model.h"

#include <iostream>
#include <optional>
#include <string>

namespace {

using namespace hgpt;

int run(int argc, char** argv) {
  CLI::App app{"Validation loss, bits per byte and task accuracies of a trained checkpoint"};
  std::string checkpoint, data_dir, tokenizer_dir, device_name;
  std::optional<int64_t> step, eval_tokens, seq_len;
  bool json = false;
  app.add_option("--checkpoint", checkpoint, "a run's checkpoint folder, <out_dir>/<model_tag>")->required();
  app.add_option("--step", step, "the checkpoint's step (default: the newest complete one)");
  app.add_option("--data", data_dir, "validation data: \"synthetic\" or a shard folder (default: the run's)");
  app.add_option("--eval_tokens", eval_tokens, "validation tokens (default: the run's eval_tokens)");
  app.add_option("--seq_len", seq_len, "tokens per validation row, any length (default: the run's max_seq_len)");
  app.add_option("--tokenizer", tokenizer_dir, "tokenizer folder for bits per byte (default: the run's)");
  app.add_option("--device", device_name, "auto, cpu or cuda (default: the run's device key)")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  app.add_flag("--json", json, "print one JSON object (the metrics.jsonl record of an evaluation)");
  if (const auto stop = parse_command_line(app, argc, argv)) return *stop;
  if (eval_tokens && (*eval_tokens <= 0 || *eval_tokens > kMaxEvalTokens))
    throw UserError("--eval_tokens must be in 1.." + std::to_string(kMaxEvalTokens) + " (about 17 billion), got " +
                    std::to_string(*eval_tokens));
  if (seq_len && (*seq_len < 1 || *seq_len > kMaxSeqLen))
    throw UserError("--seq_len must be in 1.." + std::to_string(kMaxSeqLen) + ", got " + std::to_string(*seq_len));

  auto trained = train::load_trained_model(checkpoint, step, at::Device(at::kCPU));
  Config config = trained.config;
  if (!data_dir.empty()) config.train.data = data_dir;
  if (eval_tokens) config.train.eval_tokens = *eval_tokens;
  if (seq_len) config = train::config_at_length(config, *seq_len);
  if (!device_name.empty()) config.train.device = parse_device_choice(device_name);
  const auto codec =
      infer::TextCodec::for_run(config, tokenizer_dir, train::recorded_tokenizer_fingerprint(trained.dir));

  const at::Device device = train::resolve_device(config.train.device, 0);
  auto pg = dist::ProcessGroup::create(dist::DistEnv{}, device.is_cuda());  // one process
  const train::Context ctx = train::make_context(config, *pg, device);
  trained.model->to(ctx.device);
  const auto& t = config.train;
  data::Loader val_loader(train::loader_spec(config, "val", 0, 1));
  const train::EvalPlan plan = train::plan_evaluation(config, 1, val_loader);
  if (!plan.note.empty()) std::cerr << "note: " << plan.note << std::endl;  // stdout stays the result
  const auto result =
      train::evaluate(ctx, trained.model, val_loader, plan, train::token_byte_lengths(config, codec.tokenizer()));
  nlohmann::json record = train::eval_record(result);
  record["step"] = trained.step;
  record["eval_seq_len"] = config.model.sequence_len;
  if (json) {
    record["checkpoint"] = trained.dir;
    record["eval_tokens_counted"] = result.tokens;
    std::cout << record.dump() << std::endl;
  } else {
    std::cout << "step " << trained.step << " | " << train::format_eval(record) << " | " << result.tokens
              << " tokens of " << t.data << " (val) in rows of " << config.model.sequence_len << std::endl;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  hgpt::keep_freed_cpu_memory();
  return hgpt::run_tool([&] { return run(argc, argv); });
}
