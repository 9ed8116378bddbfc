# sweep_owned_keys.sh — sourced by pattern_sweep.sh and real_text_sweep.sh: the base_train keys a
# sweep sets for each run itself, refused as --key=value overrides with the sweep flag to use.
#
#   refuse_sweep_owned_key --key=value   exits 2 (through the caller's `die`) when the key is one
#                                        of them, returns otherwise
refuse_sweep_owned_key() {
  case "${1%%=*}" in
    --out_dir) die "the sweep chooses each run's out_dir: give the sweep folder as --out DIR" ;;
    --seed) die "the sweep chooses each run's seed: give the seeds as --seeds LIST" ;;
    --block_pattern) die "the sweep chooses each run's block_pattern: give the patterns as --patterns LIST" ;;
    --model_tag) die "the sweep names each run <pattern>-s<seed>: model_tag is not an override here" ;;
    --resume) die "the sweep resumes interrupted runs itself: run the same command again, without --resume" ;;
    --overwrite) die "the sweep never deletes a run: remove a run's folder to train it afresh, without --overwrite" ;;
  esac
}
