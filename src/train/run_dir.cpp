// run_dir.cpp — a fresh run's folder: refuse another run's checkpoints, or delete them on request.
#include "hgpt/train/run_dir.h"

#include "hgpt/errors.h"
#include "hgpt/files.h"
#include "hgpt/strings.h"
#include "hgpt/train/checkpoint.h"
#include "hgpt/train/checkpoint_files.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace hgpt::train {
namespace {

// Deletes the files of `dir` that `is_meta` or `is_data` accepts: the meta files first, so no
// checkpoint is ever left looking complete while its other files go.
template <class IsMeta, class IsData>
void delete_checkpoint_files(const std::string& dir, IsMeta is_meta, IsData is_data) {
  std::vector<std::string> meta, data;
  for (const std::string& name : list_dir(dir)) {
    if (is_meta(name))
      meta.push_back(name);
    else if (is_data(name))
      data.push_back(name);
  }
  meta.insert(meta.end(), data.begin(), data.end());
  for (const std::string& name : meta) {
    const std::string path = path_join(dir, name);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT)
      throw UserError("cannot delete " + path + ": " + std::strerror(errno));
  }
}

}  // namespace

void prepare_fresh_run_dir(const std::string& dir, bool overwrite) {
  make_dirs(dir);
  const std::optional<int64_t> newest = latest_checkpoint(dir);
  if (!newest) return;
  if (!overwrite) {
    throw UserError("'" + dir + "' already holds the checkpoints of a run (newest: step " + std::to_string(*newest) +
                    "); continue it with --resume=true, choose another model_tag or out_dir, or pass " +
                    "--overwrite=true to delete them and start afresh");
  }
  // Every checkpoint file, temporary names included.
  delete_checkpoint_files(
      dir, [](const std::string& name) { return is_meta_file(name); },
      [](const std::string& name) { return is_checkpoint_data_file(name); });
}

void withdraw_checkpoint(const std::string& dir, int64_t step) {
  const std::string meta = meta_file_name(step), model = model_file_name(step), optim = optim_file_prefix(step);
  delete_checkpoint_files(
      dir, [&](const std::string& name) { return name == meta; },
      [&](const std::string& name) { return name == model || starts_with(name, optim); });
}

}  // namespace hgpt::train
