#!/usr/bin/env python3
"""report.py — see and compare training runs: one self-contained HTML page with the charts
embedded, and a report.md summary beside it.

    .venv/bin/python scripts/report.py RUN_DIR [RUN_DIR ...] [--out report.html] [--save-charts DIR]
                                       [--tensorboard DIR]

RUN_DIR is a run's <out_dir>/<model_tag> folder: base_train writes metrics.jsonl there (one JSON
object per step and per evaluation), run.json at the start (resolved config, parameter counts,
FLOPs per token, device, world size) and meta_<step>.json with each checkpoint. The report reads
what is there, so it works on a run still in progress, on a resumed run (an older file may hold a step twice:
the later line wins), on a run without validation, and with non-finite values (drawn as gaps).
Runs whose configs differ only in seed and model_tag form a group; the "over seeds" table gives
each group's mean ± standard deviation.

--out defaults to RUN_DIR/report.html for one run, else report.html in the runs' common parent;
the summary goes beside it with the same name and .md (report.md).
--save-charts DIR also writes each chart as DIR/<chart id>.png.
--tensorboard DIR also writes every run's scalars as TensorBoard event files, one TensorBoard run per
run folder (DIR/<model_tag>/, e.g. DIR/all-T-s0/ in a pattern sweep), so `tensorboard --logdir DIR`
shows the runs side by side; the x-axis is the optimizer step. Tags: train/loss, train/loss_ema,
train/lr_mult, train/grad_norm, perf/tok_per_s, perf/dt_ms, perf/mfu (any other number of a step
record: train/<key>), val/loss, val/bpb, val/<task>_acc and, for the final model at a longer
evaluation length n (extrapolate_to), val_len<n>/...; non-finite values are left out (gaps). It
replaces the event files of an earlier export into the same DIR. It needs torch and the tensorboard
package (bash scripts/setup.sh installs both into .venv).
Exit codes: 0 done, 2 bad input (a missing or unreadable run directory) or a missing package.
"""
import argparse
import base64
import bisect
import datetime
import glob
import html
import io
import json
import math
import os
import re
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from block_patterns import compact  # noqa: E402

# Chance level of each built-in task's exact-match accuracy (docs/BENCHMARKS.md): a selective copy
# answer is 2–4 letters out of 26, all exact (≈ 0); induction answers one of 26 letters and 10
# digits; associative recall answers a digit.
TASK_CHANCE = {"acc_selective_copy": 0.0, "acc_induction": 1 / 36, "acc_assoc_recall": 1 / 10}


class ReportError(Exception):
    """Bad input: printed as one `error:` line, exit code 2."""


# ---------------------------------------------------------------------------------------------
# Reading a run

def number(value):
    """A metric as a float: null, strings and other non-numbers become NaN (a gap), and an integer
    beyond a double's range (JSON allows any) infinity."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def whole(value, limit=2 ** 53):
    """A step or length the report can count with: an integer in 0..limit (a double holds it exactly)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= limit


# The fields of run.json and of its config that the report reads, with their types: a field of
# another type (a damaged or hand-edited file) is left out with a note rather than crashing.
NUMBER = (int, float)
INFO_FIELDS = {"config": dict, "num_iterations": int, "tokens_per_step": NUMBER, "flops_per_token": NUMBER,
               "parameters_by_block": dict, "flops_by_block": dict, "device": str, "world_size": int}
CONFIG_FIELDS = {"model_tag": str, "block_pattern": (list, str), "total_batch_size": NUMBER}
TYPE_NAMES = {dict: "an object", int: "an integer", NUMBER: "a number", str: "a string", (list, str): "a list or a string"}


def read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise ReportError(f"cannot read '{path}': {e}; the run directory looks damaged")


class Run:
    """One run directory: its deduplicated step and evaluation records and what it was."""

    def __init__(self, path):
        self.path = path
        self.notes = []
        if not os.path.isdir(path):
            raise ReportError(f"run directory '{path}' does not exist; pass a run's <out_dir>/<model_tag> "
                              f"folder (the one holding metrics.jsonl)")
        self.steps, self.evals, self.length_evals = self._read_metrics(os.path.join(path, "metrics.jsonl"))
        self.info = self._read_info()
        self.match = self._read_match()
        self.config = self.info.get("config", {})
        self.tag = self.config.get("model_tag") or os.path.basename(os.path.normpath(path))
        pattern = self.config.get("block_pattern")
        self.pattern = "".join(map(str, pattern)) if isinstance(pattern, list) else (pattern or "")
        self.label = f"{self.tag} · {compact(self.pattern)}" if self.pattern else self.tag

    def _read_metrics(self, file):
        if not os.path.exists(file):
            raise ReportError(f"'{self.path}' holds no metrics.jsonl, so it is not a run directory; pass a "
                              f"run's <out_dir>/<model_tag> folder")
        try:
            with open(file, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise ReportError(f"cannot read '{file}': {e}")
        steps, evals, lengths, bad = {}, {}, {}, 0
        for line in lines:
            if not line.strip():
                continue
            try:
                record = json.loads(line)  # also reads NaN / Infinity; nlohmann writes null for them
                step = record["step"]
            except (ValueError, KeyError, TypeError):
                step = None  # e.g. the half-written last line of a run being killed
            if not whole(step):
                bad += 1  # also a step that is not a whole number: Infinity, 1e400, "3", -1, 10**400
                continue
            # Files from before base_train cut metrics.jsonl back on resume may repeat steps: the later line wins.
            if "loss" in record:
                steps[step] = record
            length = record.get("eval_seq_len")
            if "val_loss" in record and whole(length):
                lengths[length] = record  # extrapolate_to: the final model at a longer length
            elif "val_loss" in record:
                evals[step] = record
        if bad:
            self.notes.append(f"{bad} unreadable line(s) of metrics.jsonl skipped")
        return [steps[s] for s in sorted(steps)], [evals[s] for s in sorted(evals)], lengths

    def by_length(self):
        """{evaluation length: final evaluation record}: the last ordinary evaluation at max_seq_len
        and the extrapolate_to records; {} for a run without the latter."""
        trained = self.config.get("max_seq_len")
        if not self.length_evals or not self.evals or not isinstance(trained, int):
            return {}
        return {trained: self.evals[-1], **self.length_evals}

    def _read_info(self):
        """run.json (written at the start), else the newest checkpoint's meta (config, world size)."""
        run_file = os.path.join(self.path, "run.json")
        if os.path.exists(run_file):
            info = self._typed(read_json(run_file), INFO_FIELDS, "run.json")
        else:
            metas = sorted(glob.glob(os.path.join(self.path, "meta_*.json")))
            if not metas:
                self.notes.append("no run.json or checkpoint: config unknown")
                return {}
            meta = self._typed(read_json(metas[-1]), {"config": dict, "world_size": int}, os.path.basename(metas[-1]))
            self.notes.append("no run.json: parameters, FLOPs and device unknown")
            info = {k: meta[k] for k in ("config", "world_size") if k in meta}
        if "config" in info:
            info["config"] = self._typed(info["config"], CONFIG_FIELDS, "the config")
        for key in ("parameters_by_block", "flops_by_block"):
            if key in info:
                info[key] = {k: v for k, v in info[key].items() if math.isfinite(number(v))}
        return info

    def _read_match(self):
        """sweep_match.json (pattern_sweep.sh --match): the run's block size beside the all-T stack's."""
        path = os.path.join(self.path, "sweep_match.json")
        if not os.path.exists(path):
            return None
        match = self._typed(read_json(path), {"metric": str, "block": NUMBER, "all_T": NUMBER}, "sweep_match.json")
        if not all(k in match for k in ("metric", "block", "all_T")) or not match["all_T"]:
            self.notes.append("sweep_match.json lacks metric, block or all_T: ignored")
            return None
        return match

    def _typed(self, fields, types, where):
        """`fields` without the entries the report reads whose type is wrong (each noted); {} for a non-object."""
        if not isinstance(fields, dict):
            self.notes.append(f"{where} is not a JSON object: ignored")
            return {}
        out = dict(fields)
        for key, kind in types.items():
            value = out.get(key)
            wrong = isinstance(value, bool) and kind is not bool or not isinstance(value, kind)
            if value is not None and (wrong or kind in (NUMBER, int) and not math.isfinite(number(value))):
                self.notes.append(f"{where}: '{key}' is not {TYPE_NAMES[kind] if wrong else 'a finite number'}: ignored")
                del out[key]
        return out

    # Series -------------------------------------------------------------------------------------
    def series(self, key, records=None):
        return [number(r.get(key)) for r in (self.steps if records is None else records)]

    def step_numbers(self, records=None):
        return [int(r["step"]) for r in (self.steps if records is None else records)]

    def tokens_per_step(self):
        if "tokens_per_step" in self.info:
            return float(self.info["tokens_per_step"])
        if "total_batch_size" in self.config:
            return float(self.config["total_batch_size"])
        for r in self.steps:  # tok_per_s = tokens per step / dt, so their product gives it back
            tokens = number(r.get("tok_per_s")) * number(r.get("dt_ms")) / 1000
            if math.isfinite(tokens) and tokens > 0:
                return float(round(tokens))
        return math.nan

    def train_seconds(self):
        """Cumulative time of the training steps (their dt_ms; evaluation excluded), per step record."""
        total, out = 0.0, []
        for dt in self.series("dt_ms"):
            if math.isfinite(dt):
                total += dt / 1000
            out.append(total)
        return out

    def last_step(self):
        return self.steps[-1]["step"] if self.steps else 0

    def status(self):
        planned = self.info.get("num_iterations")
        if planned is None:
            return f"step {self.last_step()}"
        return "done" if self.last_step() >= planned else f"in progress ({self.last_step()}/{planned})"


# ---------------------------------------------------------------------------------------------
# The summary tables

def finite(values):
    return [v for v in values if math.isfinite(v)]


def fmt(value, digits=4):
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return f"{value:,}"
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if digits == 0 or (float(value).is_integer() and abs(value) >= 1000):
        return f"{value:,.0f}"
    return f"{value:.{digits}g}" if abs(value) >= 1e4 or 0 < abs(value) < 1e-3 else f"{value:.{digits}f}"


def human(value):
    if value is None or not math.isfinite(value):
        return fmt(value)
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value:.3g}"


def task_keys(runs):
    return sorted({k for run in runs for r in run.evals for k in r if k.startswith("acc_")})


def final_values(run, tasks):
    """The numbers of one run's table row (None where the run has no such value)."""
    last_eval = run.evals[-1] if run.evals else {}
    ema = run.series("loss_ema")
    params = run.info.get("parameters_by_block", {})
    seconds = run.train_seconds()
    values = {
        "final loss (EMA)": ema[-1] if ema else None,
        "val loss": number(last_eval["val_loss"]) if "val_loss" in last_eval else None,
        "val bpb": number(last_eval["val_bpb"]) if "val_bpb" in last_eval else None,
    }
    for task in tasks:
        values[task] = number(last_eval[task]) if task in last_eval else None
    tok_s = finite(run.series("tok_per_s"))
    values["median tok/s"] = statistics.median(tok_s) if tok_s else None
    values["_params"] = params
    values["_flops"] = run.info.get("flops_per_token")
    tokens = run.last_step() * run.tokens_per_step() if run.steps else 0
    values["_tokens"] = int(tokens) if math.isfinite(tokens) else 0
    values["_seconds"] = seconds[-1] if seconds else 0.0
    return values


# The registry of block kinds (one HGPT_BLOCK_KIND(id, 'symbol', ...) line each, in order).
BLOCK_KINDS_DEF = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "include", "hgpt", "model",
                               "block_kinds.def")


def registry_entries():
    """(symbol, shown name) of each block kind, in the registry's order; the shown name is the
    first alias in capitals ("M2"), else the symbol, as the trainer prints it."""
    with open(BLOCK_KINDS_DEF, encoding="utf-8") as f:
        found = re.findall(r"^HGPT_BLOCK_KIND\(\s*\w+\s*,\s*'(.)'\s*,\s*\"([^\"]*)\"", f.read(), flags=re.MULTILINE)
    return [(symbol, aliases.split("|")[0].upper() if aliases else symbol) for symbol, aliases in found]


def registry_symbols():
    """The pattern symbols of the block kinds, in the registry's order."""
    return [symbol for symbol, _ in registry_entries()]


def kind_name(symbol):
    """The name a column shows for a kind's symbol ("M2" for '2')."""
    return dict(registry_entries()).get(symbol, symbol)


def block_kinds(runs):
    """The kinds some run has parameters in, in the registry's order (unknown ones last)."""
    named = {kind for run in runs for kind, count in run.info.get("parameters_by_block", {}).items() if count}
    kinds = [k for k in registry_symbols() if k in named] + sorted(named - set(registry_symbols()))
    return kinds or registry_symbols()


# A matched stack (pattern_sweep.sh --match) further than this from the all-T stack is flagged.
MATCH_TOLERANCE = 0.02


def match_cell(run):
    """'2,692,290 / 2,654,208 (+1.4%)': the run's block size / the all-T stack's, flagged past 2%."""
    m = run.match
    if m is None:
        return "—"
    off = m["block"] / m["all_T"] - 1
    flag = f" ⚠ outside {MATCH_TOLERANCE:.0%}" if abs(off) > MATCH_TOLERANCE else ""
    value = fmt if m["metric"] == "params" else human
    return f"{value(m['block'])} / {value(m['all_T'])} ({off:+.1%}){flag}"


def run_table(runs):
    tasks = task_keys(runs)
    kinds = block_kinds(runs)
    kind_names = " / ".join(kind_name(k) for k in kinds)
    matched = [run.match["metric"] for run in runs if run.match]
    match_header = [f"matched block {matched[0]} (this / all-T)"] if matched else []
    header = (["run", "block pattern", f"parameters ({kind_names})", "FLOPs/token", f"FLOPs/token ({kind_names})"] +
              match_header + ["tokens trained", "status",
               "final loss (EMA)", "val loss", "val bpb"] + tasks +
              ["median tok/s", "train time (s)", "device", "world size"])
    rows = []
    for run in runs:
        v = final_values(run, tasks)
        params = v["_params"]
        flops = run.info.get("flops_by_block", {})  # runs before the split have only the total
        rows.append([run.tag, compact(run.pattern) if run.pattern else "—",
                     " / ".join(fmt(params[k]) if params.get(k) is not None else "—" for k in kinds),
                     human(v["_flops"]) if v["_flops"] is not None else "—",
                     " / ".join(human(flops[k]) if flops.get(k) is not None else "—" for k in kinds)] +
                    ([match_cell(run)] if matched else []) +
                    [fmt(v["_tokens"]), run.status(),
                     fmt(v["final loss (EMA)"]), fmt(v["val loss"]), fmt(v["val bpb"])] +
                    [fmt(v[t]) for t in tasks] +
                    [fmt(v["median tok/s"], 0) if v["median tok/s"] is not None else "—", fmt(v["_seconds"], 1),
                     str(run.info.get("device", "—")), str(run.info.get("world_size", "—"))])
    return header, rows


# Config keys that may differ between the runs of one group (the seeds of one setting).
PER_RUN_KEYS = {"seed", "model_tag", "out_dir", "resume"}


def seed_groups(runs):
    groups = {}
    for run in runs:
        if run.config:
            key = json.dumps({k: v for k, v in run.config.items() if k not in PER_RUN_KEYS}, sort_keys=True)
        else:
            key = run.path  # unknown config: a group of its own
        groups.setdefault(key, []).append(run)
    return list(groups.values())


def mean_sd(values, digits=4):
    values = [v for v in values if v is not None]
    shown = finite(values)
    if not values:
        return "—"
    if len(shown) < len(values):
        return f"{len(values) - len(shown)} non-finite"
    if len(shown) == 1:
        return fmt(shown[0], digits)
    return f"{fmt(statistics.mean(shown), digits)} ± {fmt(statistics.stdev(shown), digits)}"


# The quality metrics compared across patterns, and which way is better.
LOWER_IS_BETTER = ("final loss (EMA)", "val loss", "val bpb")


def group_values(runs, tasks):
    """Per seed group: its runs, their final_values, and per quality metric their finite values."""
    out = []
    for group in seed_groups(runs):
        values = [final_values(run, tasks) for run in group]
        metrics = {c: finite([v[c] for v in values if v[c] is not None]) for c in LOWER_IS_BETTER + tuple(tasks)}
        out.append((group, values, metrics))
    return out


def noise_floor(groups):
    """Per metric, the largest seed standard deviation of any group with two or more values: a
    difference between patterns smaller than that is within the noise of the seed. None for a
    metric no group has two values of."""
    floors = {}
    for metric in groups[0][2] if groups else []:
        spreads = [statistics.stdev(v[metric]) for _, _, v in groups if len(v[metric]) >= 2]
        floors[metric] = max(spreads) if spreads else None
    return floors


def within_noise_marks(groups, floors):
    """Per (group index, metric): "best" for the best mean, "≈ best" for a mean within the noise
    floor of it, "" otherwise (and wherever the floor is unknown)."""
    marks = {}
    for metric, floor in floors.items():
        means = {i: statistics.mean(v[metric]) for i, (_, _, v) in enumerate(groups) if v[metric]}
        if floor is None or len(means) < 2:
            continue
        pick = min if metric in LOWER_IS_BETTER else max
        best = pick(means.values())
        for i, m in means.items():
            marks[(i, metric)] = "best" if m == best else "≈ best" if abs(m - best) < floor else ""
    return marks


# Resolved from other keys (bos_token_id from the data): never what tells two settings apart.
DERIVED_KEYS = {"bos_token_id"}


def group_labels(groups):
    """Each group's label: its block pattern, and where other groups share that pattern, the config
    keys whose values tell them apart (e.g. "T×6, document_boundaries=reset")."""
    def pattern_of(group):
        return compact(group[0].pattern) if group[0].pattern else group[0].tag

    labels = []
    for group in groups:
        same = [g for g in groups if pattern_of(g) == pattern_of(group) and g[0].config and group[0].config]
        keys = sorted({k for g in same for k in set(g[0].config) | set(group[0].config)
                       if k not in PER_RUN_KEYS | DERIVED_KEYS and g[0].config.get(k) != group[0].config.get(k)})
        setting = ", ".join(f"{k}={group[0].config.get(k)}" for k in keys)
        labels.append(f"{pattern_of(group)}, {setting}" if setting else pattern_of(group))
    return labels


def group_table(runs):
    tasks = task_keys(runs)
    metrics = list(LOWER_IS_BETTER) + tasks
    header = ["block pattern", "runs", "seeds"] + metrics + ["median tok/s"]
    groups = group_values(runs, tasks)
    marks = within_noise_marks(groups, noise_floor(groups))
    labels = group_labels([group for group, _, _ in groups])
    rows = []
    for i, (group, values, _) in enumerate(groups):
        seeds = ",".join(str(run.config.get("seed", "?")) for run in group)
        pattern = labels[i]
        cells = []
        for c in metrics:
            cell = mean_sd([v[c] for v in values])
            mark = marks.get((i, c), "")
            cells.append(f"{cell} ({mark})" if mark else cell)
        rows.append([pattern, str(len(group)), seeds] + cells + [mean_sd([v["median tok/s"] for v in values], digits=0)])
    return header, rows


def noise_table(runs):
    """The noise floor per metric, for the report's text: (metric, floor) rows."""
    floors = noise_floor(group_values(runs, task_keys(runs)))
    return [[metric, fmt(floor)] for metric, floor in floors.items() if floor is not None]


NOISE_TEXT = ("Noise floor: per metric, the largest standard deviation over seeds of any pattern. A pattern "
              "marked \"≈ best\" is closer to the best pattern than that: with these seeds the two cannot be told apart.")


# ---------------------------------------------------------------------------------------------
# Charts: matplotlib to PNG, one per quantity, runs overlaid (one colour per group, one line
# style per seed in it)

def plottable(values):
    return [v if math.isfinite(v) else math.nan for v in values]  # inf would wreck the axes


def line_styles(runs):
    colours = {}
    styles = {}
    for g, group in enumerate(seed_groups(runs)):
        for i, run in enumerate(group):
            colours[run.path] = f"C{g % 10}"
            styles[run.path] = ["-", "--", ":", "-."][i % 4]
    return colours, styles


def length_table(runs):
    """Validation loss and the recall accuracy of each run's final model at every evaluation length
    (extrapolate_to), Samba's Table 6 style; None when no run has such records."""
    lengths = sorted({n for run in runs for n in run.by_length()})
    if not lengths:
        return None
    header = ["run", "block pattern"] + [f"val loss @ {n}" for n in lengths] + [f"acc_assoc_recall @ {n}" for n in lengths]
    rows = []
    for run in runs:
        by = run.by_length()
        if by:
            rows.append([run.tag, compact(run.pattern) if run.pattern else "—"] +
                        [fmt(number(by[n].get("val_loss"))) if n in by else "—" for n in lengths] +
                        [fmt(number(by[n].get("acc_assoc_recall"))) if n in by and "acc_assoc_recall" in by[n] else "—"
                         for n in lengths])
    return header, rows


def chart_specs(runs):
    """(id, title, x label, y label, per-run lines, horizontal reference line or None)."""
    specs = []

    def length_chart(chart_id, title, ylabel, key, chance=None):
        lines = []
        for run in runs:
            by = run.by_length()
            lengths = sorted(n for n in by if key in by[n])
            if lengths:
                lines.append((run, lengths, plottable([number(by[n][key]) for n in lengths]), "main"))
        if lines:
            specs.append((chart_id, title, "evaluation length (tokens)", ylabel, lines, chance))

    def step_chart(chart_id, title, ylabel, key, x=None, xlabel="step", raw=False):
        lines = []
        for run in runs:
            xs = x(run) if x else run.step_numbers()
            if raw:
                lines.append((run, xs, plottable(run.series("loss")), "raw"))
            lines.append((run, xs, plottable(run.series(key)), "main"))
        specs.append((chart_id, title, xlabel, ylabel, lines, None))

    def eval_chart(chart_id, title, ylabel, key, chance=None):
        lines = [(run, run.step_numbers(run.evals), plottable(run.series(key, run.evals)), "main")
                 for run in runs if any(key in r for r in run.evals)]
        if lines:
            specs.append((chart_id, title, "step", ylabel, lines, chance))

    step_chart("loss-step", "training loss (thin: raw, thick: EMA)", "loss (nats/token)", "loss_ema", raw=True)
    step_chart("loss-tokens", "training loss (EMA) against tokens seen", "loss (nats/token)", "loss_ema",
               x=lambda run: [s * run.tokens_per_step() for s in run.step_numbers()], xlabel="tokens")
    step_chart("loss-time", "training loss (EMA) against training time", "loss (nats/token)", "loss_ema",
               x=lambda run: run.train_seconds(), xlabel="training time (s, sum of step times)")
    eval_chart("val-loss", "validation loss", "loss (nats/token)", "val_loss")
    eval_chart("val-bpb", "validation bits per byte", "bits per byte", "val_bpb")
    for task in task_keys(runs):
        eval_chart(f"{task.replace('_', '-')}", f"{task[4:]} accuracy (dotted: chance)", "exact-match accuracy", task,
                   chance=TASK_CHANCE.get(task))
    length_chart("val-loss-length", "validation loss of the final model against evaluation length", "loss (nats/token)",
                 "val_loss")
    length_chart("recall-length", "assoc_recall accuracy against evaluation length (dotted: chance)",
                 "exact-match accuracy", "acc_assoc_recall", chance=TASK_CHANCE.get("acc_assoc_recall"))
    step_chart("tok-s", "throughput", "tokens/s", "tok_per_s")
    if any("mfu" in r for run in runs for r in run.steps):
        step_chart("mfu", "model FLOPs utilisation", "MFU (%)", "mfu")
    step_chart("lr-mult", "learning-rate multiplier", "lr multiplier", "lr_mult")
    step_chart("grad-norm", "gradient norm (before clipping)", "global L2 norm", "grad_norm")
    return specs


def draw(spec, colours, styles):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chart_id, title, xlabel, ylabel, lines, chance = spec
    fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=90)
    for run, xs, ys, kind in lines:
        if kind == "raw":
            ax.plot(xs, ys, color=colours[run.path], linewidth=0.6, alpha=0.35)
        else:
            ax.plot(xs, ys, color=colours[run.path], linestyle=styles[run.path], linewidth=1.6, label=run.label,
                    marker="o" if len(xs) <= 12 else None, markersize=3)
    if chance is not None:
        ax.axhline(chance, color="grey", linestyle=":", linewidth=1.2, label=f"chance {chance:.3g}")
    if chart_id.endswith("-length"):
        ax.set_xscale("log", base=2)  # evaluation lengths double
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# Output: HTML (charts embedded as data: URLs) and Markdown

STYLE = """body{font-family:sans-serif;margin:2em;max-width:1400px}
table{border-collapse:collapse;font-size:13px;margin-bottom:1.5em}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}th{background:#f0f0f0}
td:first-child,th:first-child{text-align:left}
figure{display:inline-block;margin:0.5em}figcaption{font-size:12px;color:#555}"""


def html_table(table_id, header, rows, row_ids=None):
    out = [f'<table id="{table_id}"><thead><tr>' + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr></thead><tbody>"]
    for i, row in enumerate(rows):
        attr = f' data-run="{html.escape(row_ids[i])}"' if row_ids else ""
        out.append(f"<tr{attr}>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_report(runs, out_path, charts_dir=None):
    header, rows = run_table(runs)
    g_header, g_rows = group_table(runs)
    show_groups = any(int(r[1]) > 1 for r in g_rows)
    notes = [f"{run.tag}: {note}" for run in runs for note in run.notes]
    notes += [f"{run.tag}: no validation records" for run in runs if not run.evals]
    notes += [f"{run.tag}: its block {run.match['metric']} are more than {MATCH_TOLERANCE:.0%} from the all-T stack's"
              for run in runs if run.match and abs(run.match["block"] / run.match["all_T"] - 1) > MATCH_TOLERANCE]
    colours, styles = line_styles(runs)
    figures = []
    for spec in chart_specs(runs):
        png = draw(spec, colours, styles)
        if charts_dir:
            os.makedirs(charts_dir, exist_ok=True)
            with open(os.path.join(charts_dir, f"{spec[0]}.png"), "wb") as f:
                f.write(png)
        figures.append(f'<figure id="chart-{spec[0]}"><img alt="{html.escape(spec[1])}" '
                       f'src="data:image/png;base64,{base64.b64encode(png).decode()}">'
                       f"<figcaption>{html.escape(spec[1])}</figcaption></figure>")
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sources = ", ".join(os.path.abspath(run.path) for run in runs)
    parts = [f"<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>hybridgpt report</title>"
             f"<style>{STYLE}</style></head><body>",
             f"<h1>Training report: {len(runs)} run(s)</h1><p>{html.escape(when)}; runs: {html.escape(sources)}</p>",
             "<h2>Runs</h2>", html_table("runs", header, rows, [run.tag for run in runs])]
    noise = noise_table(runs) if show_groups else []
    if show_groups:
        parts += ["<h2>Over seeds (mean ± standard deviation)</h2>", html_table("seed-groups", g_header, g_rows)]
    if noise:
        parts += [f"<p>{html.escape(NOISE_TEXT)}</p>", html_table("noise-floor", ["metric", "noise floor"], noise)]
    lengths = length_table(runs)
    if lengths:
        parts += ["<h2>By evaluation length (the final model)</h2>", html_table("by-length", *lengths)]
    if notes:
        parts.append('<ul id="notes">' + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    parts += ["<h2>Charts</h2>"] + figures + ["</body></html>\n"]
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "w", encoding="utf-8") as f:
        f.write("\n".join(parts))

    md = [f"# Training report: {len(runs)} run(s)", "", f"{when}; charts in {os.path.basename(out_path)}.", "",
          markdown_table(header, rows), ""]
    if show_groups:
        md += ["## Over seeds (mean ± standard deviation)", "", markdown_table(g_header, g_rows), ""]
    if noise:
        md += [NOISE_TEXT, "", markdown_table(["metric", "noise floor"], noise), ""]
    if lengths:
        md += ["## By evaluation length (the final model)", "", markdown_table(*lengths), ""]
    if notes:
        md += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    md_path = os.path.splitext(out_path)[0] + ".md"
    with open(md_path, "w", encoding="utf-8") as f:
        f.write("\n".join(md))
    return md_path


# ---------------------------------------------------------------------------------------------
# TensorBoard: every run's scalars as event files, one TensorBoard run (a subfolder) per run folder,
# so `tensorboard --logdir DIR` shows a sweep side by side

# Tags of the step records' keys: the optimisation under train/, the speed under perf/; any other
# numeric key of a step record goes to train/<key>.
STEP_TAGS = {"loss": "train/loss", "loss_ema": "train/loss_ema", "lr_mult": "train/lr_mult",
             "grad_norm": "train/grad_norm", "tok_per_s": "perf/tok_per_s", "dt_ms": "perf/dt_ms", "mfu": "perf/mfu"}


def summary_writer():
    """torch's SummaryWriter class, imported only for --tensorboard (it needs torch and the tensorboard
    package, which the HTML report does not)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:
        reason = (str(e).splitlines() or ["not importable"])[0]  # one line, whatever the import said
        raise ReportError(f"--tensorboard needs the tensorboard package ({reason}); install it with "
                          f"bash scripts/setup.sh (into .venv) and run the report with .venv/bin/python")
    return SummaryWriter


def eval_tag(key, section):
    """val_bpb → val/bpb, acc_induction → val/induction_acc; section is val, or val_len<n> for the
    final model at a longer evaluation length."""
    if key.startswith("acc_"):
        return f"{section}/{key[4:]}_acc"
    return f"{section}/{key[4:] if key.startswith('val_') else key}"


def record_scalars(record, tag_of, skip=("step",)):
    """(tag, value) of each finite number in a record; null, strings, booleans and non-finite values
    are left out, as the charts draw them as gaps."""
    out = []
    for key, value in record.items():
        value = number(value)
        if key not in skip and math.isfinite(value):
            out.append((tag_of(key), value))
    return out


def run_scalars(run):
    """(tag, step, value, training seconds) of every scalar of a run: its step records, evaluations
    and evaluations at longer lengths. The seconds are the sum of step times up to the step, so that
    TensorBoard's "relative" axis is training time, as in the report's loss-time chart."""
    steps, seconds = run.step_numbers(), run.train_seconds()

    def seconds_at(step):  # an evaluation at step s comes after the step record s
        i = bisect.bisect_right(steps, step)
        return seconds[i - 1] if i else 0.0

    out = []
    for record, t in zip(run.steps, seconds):
        out += [(tag, record["step"], v, t) for tag, v in record_scalars(record, lambda k: STEP_TAGS.get(k, f"train/{k}"))]
    for record in run.evals:
        out += [(tag, record["step"], v, seconds_at(record["step"]))
                for tag, v in record_scalars(record, lambda k: eval_tag(k, "val"))]
    for length, record in sorted(run.length_evals.items()):
        out += [(tag, record["step"], v, seconds_at(record["step"]))
                for tag, v in record_scalars(record, lambda k: eval_tag(k, f"val_len{length}"), ("step", "eval_seq_len"))]
    return out


def tensorboard_names(runs):
    """One folder name per run: its name in the report (model_tag, or the folder path where tags
    repeat), characters TensorBoard or a file system may mangle as '_', made unique."""
    names, taken = [], set()
    for run in runs:
        base = re.sub(r"[^\w.+=-]+", "_", run.tag).strip("._") or "run"
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}-{n}"
        taken.add(name)
        names.append(name)
    return names


def run_text(run):
    """The run's description for TensorBoard's text tab (Markdown): what it is and its config."""
    lines = [f"**{run.label}**", "", f"run folder: `{os.path.abspath(run.path)}`", "", f"status: {run.status()}"]
    if run.config:
        lines += ["", "config:", ""] + ["    " + line for line in json.dumps(run.config, indent=2).splitlines()]
    return "\n".join(lines)


def write_tensorboard(runs, log_dir, SummaryWriter):
    """DIR/<name>/ with each run's event file. Event files an earlier export left there are removed
    first: TensorBoard would show both, each step twice."""
    for run, name in zip(runs, tensorboard_names(runs)):
        folder = os.path.join(log_dir, name)
        for old in glob.glob(os.path.join(folder, "events.out.tfevents.*")):
            os.remove(old)
        start = run_start(run)
        writer = SummaryWriter(log_dir=folder)
        try:
            for tag, step, value, seconds in run_scalars(run):
                writer.add_scalar(tag, value, step, walltime=start + seconds)
            writer.add_text("run", run_text(run), 0, walltime=start)
        finally:
            writer.close()


def run_start(run):
    """The wall-clock time the run started: run.json is written then (without it, metrics.jsonl's
    last change, so only TensorBoard's relative axis is right)."""
    info = os.path.join(run.path, "run.json")
    return os.path.getmtime(info if os.path.exists(info) else os.path.join(run.path, "metrics.jsonl"))


def distinct_names(runs):
    """Runs with the same model_tag (out/a/d4, out/b/d4) are named by their folders instead."""
    tags = [run.tag for run in runs]
    if len(set(tags)) == len(tags):
        return
    parent = os.path.commonpath([os.path.abspath(run.path) for run in runs])
    for run in runs:
        run.tag = os.path.relpath(os.path.abspath(run.path), parent) if len(runs) > 1 else run.tag
        run.label = f"{run.tag} · {compact(run.pattern)}" if run.pattern else run.tag


def default_out(paths):
    if len(paths) == 1:
        return os.path.join(paths[0], "report.html")
    return os.path.join(os.path.commonpath([os.path.abspath(p) for p in paths]), "report.html")


def main(argv):
    parser = argparse.ArgumentParser(description="HTML report (with charts) and report.md for training runs")
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="a run's <out_dir>/<model_tag> folder")
    parser.add_argument("--out", help="the HTML file (report.md goes beside it)")
    parser.add_argument("--save-charts", metavar="DIR", help="also write each chart as DIR/<id>.png")
    parser.add_argument("--tensorboard", metavar="DIR", help="also write each run's scalars as TensorBoard event "
                        "files, one run per subfolder DIR/<run>/ (view with: tensorboard --logdir DIR)")
    args = parser.parse_args(argv)
    try:
        # Before anything is written: a missing package stops the report, not half of it.
        SummaryWriter = summary_writer() if args.tensorboard else None
        if args.tensorboard:  # its folder made first: a report is never left without its event files
            if os.path.exists(args.tensorboard) and not os.path.isdir(args.tensorboard):
                raise ReportError(f"--tensorboard '{args.tensorboard}' is a file, not a folder; choose another --tensorboard")
            try:
                os.makedirs(args.tensorboard, exist_ok=True)
            except OSError as e:
                raise ReportError(f"cannot write the TensorBoard event files ({e}); choose another --tensorboard")
        runs = [Run(path) for path in args.runs]
        distinct_names(runs)
        out = args.out or default_out(args.runs)
        if os.path.isdir(out):
            raise ReportError(f"--out '{out}' is a folder; give the report's file name, e.g. {os.path.join(out, 'report.html')}")
        try:
            md = write_report(runs, out, args.save_charts)
        except OSError as e:
            raise ReportError(f"cannot write the report ({e}); choose another --out or --save-charts")
        if args.tensorboard:
            try:
                write_tensorboard(runs, args.tensorboard, SummaryWriter)
            except OSError as e:
                raise ReportError(f"cannot write the TensorBoard event files ({e}); choose another --tensorboard")
    except ReportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ImportError as e:
        print(f"error: {e}; install matplotlib into this Python (scripts/setup.sh puts it in .venv) and run "
              f"the report with .venv/bin/python", file=sys.stderr)
        return 2
    print(f"report: {out} (summary: {md})")
    if args.tensorboard:
        print(f"tensorboard: {args.tensorboard} ({len(runs)} run(s); view with: tensorboard --logdir {args.tensorboard})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
