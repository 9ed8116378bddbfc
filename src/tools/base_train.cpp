// base_train — pretrain a HybridGPT from a JSON config (the C++ counterpart of nanochat's
// scripts/base_train.py).
//
//   base_train CONFIG.json [--key=value ...] [--dry-run [--json] | --check]
//
// Launch as one process, under torchrun (RANK/WORLD_SIZE/...) or under mpirun (OMPI_COMM_WORLD_*).
// Exit codes: 0 done, 2 bad input (config, data, flags), 1 internal or distributed failure,
// 128+N after a clean stop on signal N (a checkpoint was written; resume with --resume=true).
#include "hgpt/config.h"
#include "hgpt/cpu_memory.h"
#include "hgpt/data/loader.h"
#include "hgpt/dist/process_group.h"
#include "hgpt/errors.h"
#include "hgpt/infer/text_codec.h"
#include "hgpt/strings.h"
#include "hgpt/train/evaluate.h"
#include "hgpt/train/summary.h"
#include "hgpt/train/trainer.h"

#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

namespace {

const char* kUsage =
    "usage: base_train CONFIG.json [--key=value ...] [--dry-run [--json] | --check]\n"
    "  CONFIG.json   a JSON object of config keys (see README.md; configs/ has examples)\n"
    "  --key=value   override a config key (value parsed as JSON, else taken as a string)\n"
    "  --dry-run     print the model/batch/memory summary and exit without training\n"
    "  --json        with --dry-run: the summary (and the resolved config) as one JSON object\n"
    "  --check       check the config, device, memory, data and tokenizer as a run does, then exit\n"
    "                without training or writing anything\n";

struct Args {
  std::string config_path;
  std::vector<std::string> overrides;
  bool dry_run = false, json = false, check = false, help = false;
};

Args parse_args(int argc, char** argv) {
  Args args;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h")
      args.help = true;
    else if (a == "--dry-run")
      args.dry_run = true;
    else if (a == "--json")
      args.json = true;
    else if (a == "--check")
      args.check = true;
    else if (hgpt::starts_with(a, "--"))
      args.overrides.push_back(a.substr(2));
    else if (args.config_path.empty())
      args.config_path = a;
    else
      throw hgpt::UserError("unexpected argument '" + a + "' (one config file; overrides are --key=value)");
  }
  if (!args.help && args.config_path.empty()) {
    throw hgpt::UserError("no config file given; try configs/tiny_cpu.json\n" + std::string(kUsage));
  }
  if (args.json && !args.dry_run) throw hgpt::UserError("--json only goes with --dry-run");
  if (args.check && args.dry_run) throw hgpt::UserError("give --dry-run or --check, not both");
  return args;
}

// Several CPU ranks on one machine would each start a thread per core; unless the user chose
// (OMP_NUM_THREADS), share the cores among this node's ranks, as torchrun does.
void share_cpu_threads(const hgpt::dist::DistEnv& env) {
  if (env.world_size <= 1 || std::getenv("OMP_NUM_THREADS") != nullptr) return;
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(std::max(1, cores / std::max(1, env.local_world_size)));
}

int run(int argc, char** argv) {
  const Args args = parse_args(argc, argv);
  if (args.help) {
    std::cout << kUsage;
    return 0;
  }
  const hgpt::dist::DistEnv env = hgpt::dist::detect_env();
  const hgpt::Config config =
      hgpt::train::with_document_bos(hgpt::load_config(args.config_path, args.overrides, env.world_size));

  if (args.dry_run) {
    auto summary = hgpt::train::run_summary(config, env.world_size, hgpt::train::wants_cuda(config.train.device));
    if (args.json) summary["config"] = config.to_json();  // as run.json records it
    if (env.rank == 0) std::cout << (args.json ? summary.dump() + "\n" : hgpt::train::format_summary(summary));
    return 0;
  }

  const at::Device device = hgpt::train::resolve_device(config.train.device, env.local_rank);
  hgpt::train::check_fits_in_memory(config, device.is_cuda());
  if (args.check) {  // what a run reads before its first step, read the same way
    (void)hgpt::infer::TextCodec::for_run(config);
    for (const char* split : {"train", "val"})
      hgpt::data::Loader loader(hgpt::train::loader_spec(config, split, env.rank, env.world_size));
    if (env.rank == 0) std::cout << "check: config, device, memory, data and tokenizer are good\n";
    return 0;
  }
  if (device.is_cpu()) share_cpu_threads(env);
  hgpt::dist::DistOptions options;
  options.timeout = std::chrono::seconds(config.train.dist_timeout_s);
  options.gloo_interface = config.train.gloo_interface;
  // Under a launcher even one rank runs the real backend (NCCL or Gloo), so a one-GPU machine
  // exercises the distributed path end to end (scripts/device_check.sh does).
  options.force_backend = env.launcher != "single";
  auto pg = hgpt::dist::ProcessGroup::create(env, device.is_cuda(), options);
  pg->check_same_config(config.to_json().dump());
  return hgpt::train::run_training(config, *pg, device);
}

}  // namespace

int main(int argc, char** argv) {
  hgpt::keep_freed_cpu_memory();
  return hgpt::run_tool([&] { return run(argc, argv); });
}
