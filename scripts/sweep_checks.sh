# sweep_checks.sh — sourced by pattern_sweep.sh and real_text_sweep.sh: the checks of their
# arguments that both make before any work (each exits 2 through the caller's `die`).
#
#   refuse_sweep_owned_key --key=value   the base_train keys a sweep sets for each run itself,
#                                        refused as overrides, naming the sweep flag to use
#   refuse_unusable_out DIR              an --out that is not a folder and cannot be made one
refuse_sweep_owned_key() {
  case "${1%%=*}" in
    --out_dir) die "the sweep chooses each run's out_dir: give the sweep folder as --out DIR" ;;
    --seed) die "the sweep chooses each run's seed: give the seeds as --seeds LIST" ;;
    --block_pattern) die "the sweep chooses each run's block_pattern: give the patterns as --patterns LIST" ;;
    --hybrid_layer_pattern)
      die "the sweep chooses each run's layers: give Megatron-style patterns as --patterns LIST (e.g. M*-M), not hybrid_layer_pattern" ;;
    --model_tag) die "the sweep names each run <pattern>-s<seed>: model_tag is not an override here" ;;
    --resume) die "the sweep resumes interrupted runs itself: run the same command again, without --resume" ;;
    --overwrite) die "the sweep never deletes a run: remove a run's folder to train it afresh, without --overwrite" ;;
  esac
}

refuse_unusable_out() {
  local out="$1" part="$1"
  [[ -L "$out" && ! -e "$out" ]] &&
    die "--out '$out' is a symbolic link to something that does not exist; remove the link, or choose another --out"
  [[ ! -e "$out" || -d "$out" ]] || die "--out '$out' exists and is not a folder; choose another --out"
  while [[ ! -e "$part" && ! -L "$part" ]]; do part=$(dirname "$part"); done
  [[ -L "$part" && ! -e "$part" ]] &&
    die "--out '$out' cannot be created: '$part' is a symbolic link to something that does not exist"
  [[ -d "$part" ]] || die "--out '$out' cannot be created: '$part' is a file, not a folder; choose another --out"
  [[ -w "$part" && -x "$part" ]] || die "--out '$out' cannot be written: '$part' is not writable; choose another --out"
  return 0
}
