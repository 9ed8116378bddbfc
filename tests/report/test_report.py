"""test_report.py — scripts/report.py, scripts/pattern_sweep.sh and scripts/block_patterns.py.

Run by ctest (tests named Report.*) with the project's .venv Python; HGPT_BUILD_DIR and
HGPT_SOURCE_DIR point at the build and source trees. The report's HTML is checked through its
structure (table cells, figure ids, embedded PNGs), never its pixels.
"""
import base64
import html.parser
import json
import math
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import unittest

SOURCE_DIR = os.environ.get("HGPT_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "../..")))
BUILD_DIR = os.environ.get("HGPT_BUILD_DIR", os.path.join(SOURCE_DIR, "build"))
BASE_TRAIN = os.path.join(BUILD_DIR, "base_train")
REPORT = os.path.join(SOURCE_DIR, "scripts/report.py")
SWEEP = os.path.join(SOURCE_DIR, "scripts/pattern_sweep.sh")
TINY_CONFIG = os.path.join(SOURCE_DIR, "configs/tiny_cpu.json")
sys.path.insert(0, os.path.join(SOURCE_DIR, "scripts"))
import block_patterns  # noqa: E402

# A model that trains in milliseconds per step (as in tests/train): depth 2, width 64, seq 32,
# 128 tokens per step, one thread.
TINY = ["--depth=2", "--aspect_ratio=32", "--head_dim=32", "--max_seq_len=32", "--device_batch_size=4",
        "--total_batch_size=128", "--eval_tokens=256", "--sample_every=-1", "--device=cpu"]
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def run(args, **kwargs):
    return subprocess.run(args, capture_output=True, text=True, env=ENV, **kwargs)


def run_report(*args):
    return run([sys.executable, REPORT, *args])


# ---------------------------------------------------------------------------------------------
# Reading the report back

class ReportPage(html.parser.HTMLParser):
    """Tables (id → header, rows, row ids) and figures (id → the img src) of a report.html."""

    def __init__(self, path):
        super().__init__()
        self.tables, self.figures = {}, {}
        self._table = self._row = self._cell = self._figure = None
        self._in_head = False
        with open(path, encoding="utf-8") as f:
            self.feed(f.read())

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "thead":
            self._in_head = True
        elif tag == "table":
            self._table = self.tables.setdefault(a.get("id"), {"header": [], "rows": [], "ids": []})
        elif tag == "tr" and self._table is not None:
            self._row = []
            if "data-run" in a:
                self._table["ids"].append(a["data-run"])
        elif tag in ("td", "th") and self._row is not None:
            self._cell = ""
        elif tag == "figure":
            self._figure = a.get("id")
        elif tag == "img" and self._figure:
            self.figures[self._figure] = a.get("src", "")

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(self._cell)
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self._in_head:
                self._table["header"] = self._row
            else:
                self._table["rows"].append(self._row)
            self._row = None
        elif tag == "thead":
            self._in_head = False
        elif tag == "table":
            self._table = None
        elif tag == "figure":
            self._figure = None

    def rows(self, table_id):
        """Rows of a table as dicts keyed by the header."""
        t = self.tables[table_id]
        return [dict(zip(t["header"], row)) for row in t["rows"]]


def png_ok(src):
    prefix = "data:image/png;base64,"
    return src.startswith(prefix) and base64.b64decode(src[len(prefix):])[:8] == b"\x89PNG\r\n\x1a\n"


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


# ---------------------------------------------------------------------------------------------

class BlockPatterns(unittest.TestCase):
    def test_strategies_at_depth_20_match_the_named_configs(self):
        for name, config in [("all-T", "transformer_d20"), ("all-M", "mamba_d20"),
                             ("alternating", "hybrid_alternating_d20"), ("early-T-late-M", "hybrid_early_t_late_m_d20"),
                             ("strategic", "hybrid_strategic_d20"), ("all-M2", "mamba2_d20"),
                             ("nemotron", "hybrid_nemotron_d20")]:
            with open(os.path.join(SOURCE_DIR, "configs", config + ".json")) as f:
                pattern = json.load(f).get("block_pattern") or ["T"] * 20
            symbols = "".join("2" if entry == "M2" else entry for entry in pattern)
            self.assertEqual(block_patterns.expand(name, 20), symbols, name)

    def test_strategic_d20_is_the_19_entry_list_with_one_more_mamba_block_before_the_middle(self):
        original = ["T", "T"] + ["M"] * 6 + ["T"] + ["M"] * 6 + ["T", "M", "T", "T"]
        self.assertEqual(len(original), 19)
        ours = block_patterns.expand("strategic", 20)
        self.assertEqual(ours, "".join(original[:2] + ["M"] + original[2:]))
        self.assertEqual(block_patterns.compact(ours), "T×2 M×7 T M×6 T M T×2")

    def test_every_strategy_scales_to_any_depth(self):
        for depth in range(1, 65):
            for name in block_patterns.STRATEGIES:
                p = block_patterns.expand(name.upper(), depth)
                self.assertEqual(len(p), depth, (name, depth))
                self.assertLessEqual(set(p), {"T", "M", "2", "S", "*", "-"})
            strategic = block_patterns.expand("strategic", depth)
            self.assertEqual(strategic[0], "T")
            self.assertEqual(strategic[-1], "T")
            self.assertEqual(strategic[(depth - 1) // 2], "T")
        self.assertEqual(block_patterns.expand("early-T-late-M", 4), "TTMM")
        self.assertEqual(block_patterns.expand("alternating", 5), "TMTMT")
        for depth in range(3, 65):  # Nemotron-style: about 8% attention, spaced evenly, never first or last
            p = block_patterns.expand("nemotron", depth)
            self.assertEqual(p.count("T"), max(1, round(0.08 * depth)), depth)
            self.assertEqual((p[0], p[-1]), ("2", "2"), depth)
        self.assertEqual(block_patterns.expand("nemotron", 20), "2" * 5 + "T" + "2" * 9 + "T" + "2" * 4)

    def test_samba_and_megatron(self):
        self.assertEqual(block_patterns.expand("samba", 6), "M-SM-S")
        self.assertEqual(block_patterns.expand("samba", 4), "M-SM")
        megatron_8b = "M-M-M--M-M*-M-M-M-M--M*-M-M-M-M-M*--M-M-M-M-M*-M--M-M-M-"
        self.assertEqual(block_patterns.expand("megatron", 56), megatron_8b.replace("M", "2"))
        self.assertEqual(block_patterns.expand("megatron", 4), "2-*-")
        self.assertEqual(block_patterns.compact("M-SM-S"), "(M MLP SWA)×2")

    def test_megatron_strategy_is_base_trains_allocation(self):
        """block_patterns.py and base_train's hybrid_*_ratio keys allocate the same layers."""
        base_train = os.path.join(BUILD_DIR, "base_train")
        if not os.access(base_train, os.X_OK):
            self.skipTest(f"{base_train} not built")
        for depth in (1, 2, 3, 5, 8, 13, 20, 31, 56):
            ratio = max(0.08, 1 / depth)
            out = subprocess.run([base_train, os.path.join(SOURCE_DIR, "configs", "tiny_cpu.json"), "--block_pattern=null",
                                  f"--depth={depth}", "--aspect_ratio=32", "--head_dim=32", f"--hybrid_attention_ratio={ratio}",
                                  f"--hybrid_mlp_ratio={min(0.5, 1 - ratio)}", "--dry-run", "--json"],
                                 capture_output=True, text=True, check=True)
            self.assertEqual(json.loads(out.stdout)["block_pattern"], block_patterns.expand("megatron", depth), depth)

    def test_literal_patterns_and_bad_names(self):
        self.assertEqual(block_patterns.expand("tmmt", 4), "TMMT")
        self.assertEqual(block_patterns.expand("t2m2", 4), "T2M2")
        self.assertEqual(block_patterns.expand("s*-2", 4), "S*-2")
        with self.assertRaisesRegex(block_patterns.PatternError, "3 layers but the model has depth 4"):
            block_patterns.expand("TMT", 4)
        with self.assertRaisesRegex(block_patterns.PatternError, "unknown block pattern 'zigzag'"):
            block_patterns.expand("zigzag", 4)

    def test_compact(self):
        self.assertEqual(block_patterns.compact("T" * 12 + "M" * 8), "T×12 M×8")
        self.assertEqual(block_patterns.compact("TM" * 10), "(T M)×10")
        self.assertEqual(block_patterns.compact("TM"), "T M")
        self.assertEqual(block_patterns.compact("TTMTTM"), "(T T M)×2")
        self.assertEqual(block_patterns.compact("22222T222"), "M2×5 T M2×3")
        self.assertEqual(block_patterns.compact("T2T2"), "(T M2)×2")


# ---------------------------------------------------------------------------------------------
# Edge cases on synthetic metrics files

def write_run(path, lines, num_iterations=None, pattern="TM", seed=0):
    """A run folder with these metrics lines (strings written as they are) and, with
    num_iterations, a run.json like base_train's."""
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "metrics.jsonl"), "w") as f:
        for line in lines:
            f.write((line if isinstance(line, str) else json.dumps(line)) + "\n")
    if num_iterations is not None:
        info = {"num_iterations": num_iterations, "tokens_per_step": 1000, "parameters_by_block": {"T": 10, "M": 20},
                "flops_per_token": 3e6, "device": "cpu", "world_size": 1,
                "config": {"block_pattern": list(pattern), "model_tag": os.path.basename(path), "seed": seed}}
        with open(os.path.join(path, "run.json"), "w") as f:
            json.dump(info, f)


def step_line(step, loss, **extra):
    record = {"step": step, "loss": loss, "loss_ema": loss, "lr_mult": 1.0, "dt_ms": 100.0, "tok_per_s": 10000.0,
              "grad_norm": 1.0}
    record.update(extra)
    return record


class ReportEdgeCases(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="hgpt_report_")

    def tearDown(self):
        shutil.rmtree(self.dir)

    def report(self, *runs):
        out = os.path.join(self.dir, "report.html")
        r = run_report(*[os.path.join(self.dir, name) for name in runs], "--out", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        return ReportPage(out)

    def markdown(self):
        with open(os.path.join(self.dir, "report.md"), encoding="utf-8") as f:
            return f.read()

    def test_run_in_progress(self):
        write_run(os.path.join(self.dir, "live"), [{"step": 0, "val_loss": 5.0}] + [step_line(s, 5 - s / 10) for s in range(1, 11)],
                  num_iterations=100)
        row = self.report("live").rows("runs")[0]
        self.assertEqual(row["status"], "in progress (10/100)")
        self.assertEqual(row["tokens trained"], "10,000")
        self.assertEqual(row["parameters (T / M)"], "10 / 20")

    def test_repeated_steps_after_a_resume_the_later_line_wins(self):
        lines = [step_line(s, 4.0) for s in range(1, 7)] + [{"step": 6, "val_loss": 3.0}]
        lines += [step_line(s, 2.0) for s in range(4, 7)] + [{"step": 6, "val_loss": 1.5}]
        write_run(os.path.join(self.dir, "resumed"), lines, num_iterations=6)
        page = self.report("resumed")
        row = page.rows("runs")[0]
        self.assertEqual(row["final loss (EMA)"], "2.0000")
        self.assertEqual(row["val loss"], "1.5000")
        self.assertEqual(row["tokens trained"], "6,000")
        self.assertEqual(row["train time (s)"], "0.6")  # six step times, not nine
        self.assertEqual(row["status"], "done")

    def test_no_validation(self):
        write_run(os.path.join(self.dir, "noval"), [step_line(s, 3.0) for s in range(1, 5)], num_iterations=4)
        page = self.report("noval")
        row = page.rows("runs")[0]
        self.assertEqual(row["val loss"], "—")
        self.assertEqual(row["val bpb"], "—")
        self.assertIn("chart-loss-step", page.figures)
        self.assertNotIn("chart-val-loss", page.figures)

    def test_non_finite_values_are_gaps_not_crashes(self):
        lines = [step_line(1, 3.0), '{"step": 2, "loss": NaN, "loss_ema": Infinity, "grad_norm": null, '
                 '"tok_per_s": -Infinity, "dt_ms": 100}', step_line(3, 2.5, grad_norm=float("inf")),
                 step_line(4, 2.0, loss_ema=None),
                 {"step": 3, "val_loss": float("nan"), "val_bpb": None, "acc_induction": 0.5},
                 '{"step": 5, "loss": 2.']  # the half-written last line of a killed run
        write_run(os.path.join(self.dir, "nan"), lines, num_iterations=10)
        page = self.report("nan")
        row = page.rows("runs")[0]
        self.assertEqual(row["val loss"], "nan")
        self.assertEqual(row["val bpb"], "nan")
        self.assertEqual(row["acc_induction"], "0.5000")
        self.assertEqual(row["final loss (EMA)"], "nan")  # the last step's value, whatever it is
        for chart in ("chart-loss-step", "chart-grad-norm", "chart-tok-s", "chart-acc-induction"):
            self.assertTrue(png_ok(page.figures[chart]), chart)

    def test_runs_with_the_same_model_tag_are_named_by_folder(self):
        for name in ("a/d4", "b/d4"):
            write_run(os.path.join(self.dir, name), [step_line(1, 3.0)], num_iterations=1)
        page = self.report("a/d4", "b/d4")
        self.assertEqual(page.tables["runs"]["ids"], ["a/d4", "b/d4"])

    def test_missing_directory_is_a_clear_error(self):
        missing = os.path.join(self.dir, "nowhere")
        r = run_report(missing)
        self.assertEqual(r.returncode, 2)
        self.assertRegex(r.stderr, r"^error: run directory '.*nowhere' does not exist")
        self.assertEqual(len(r.stderr.strip().splitlines()), 1)

    def test_directory_without_metrics_is_a_clear_error(self):
        os.makedirs(os.path.join(self.dir, "empty"))
        r = run_report(os.path.join(self.dir, "empty"))
        self.assertEqual(r.returncode, 2)
        self.assertRegex(r.stderr, r"^error: '.*empty' holds no metrics.jsonl")

    def test_unreadable_metrics_is_a_clear_error(self):
        os.makedirs(os.path.join(self.dir, "bad", "metrics.jsonl"))  # a folder where the file should be
        r = run_report(os.path.join(self.dir, "bad"))
        self.assertEqual(r.returncode, 2)
        self.assertRegex(r.stderr, r"^error: cannot read '.*metrics.jsonl'")

    def test_steps_that_are_not_whole_numbers_are_skipped_lines(self):
        lines = [step_line(1, 3.0), '{"step": Infinity, "loss": 1.0}', '{"step": 1e400, "loss": 1.0}',
                 '{"step": "2", "loss": 1.0}', '{"step": -1, "loss": 1.0}', '[1, 2]', step_line(2, 2.5)]
        write_run(os.path.join(self.dir, "odd"), lines, num_iterations=2)
        page = self.report("odd")
        self.assertEqual(page.rows("runs")[0]["status"], "done")
        self.assertIn("5 unreadable line(s) of metrics.jsonl skipped", self.markdown())

    def test_numbers_beyond_a_double_are_gaps_or_notes_not_tracebacks(self):
        huge = "1" + "0" * 400  # JSON allows any integer; Python's float() of it overflows
        lines = [step_line(1, 3.0), '{"step": %s, "loss": 1.0}' % huge,
                 '{"step": 2, "loss": %s, "dt_ms": %s}' % (huge, huge),
                 '{"step": 2, "val_loss": 2.0, "eval_seq_len": %s}' % huge, step_line(3, 2.5)]
        write_run(os.path.join(self.dir, "huge"), lines, num_iterations=3)
        info_path = os.path.join(self.dir, "huge", "run.json")
        with open(info_path) as f:
            info = f.read()
        info = info.replace('"tokens_per_step": 1000', '"tokens_per_step": Infinity')
        info = info.replace('"flops_per_token": 3000000.0', '"flops_per_token": %s' % huge)
        info = info.replace('"T": 10', '"T": %s' % huge)
        with open(info_path, "w") as f:
            f.write(info)
        page = self.report("huge")
        self.assertEqual(page.rows("runs")[0]["status"], "done")
        notes = self.markdown()
        self.assertIn("1 unreadable line(s) of metrics.jsonl skipped", notes)
        self.assertIn("'tokens_per_step' is not a finite number", notes)
        self.assertIn("'flops_per_token' is not a finite number", notes)

    def test_run_json_of_the_wrong_shape_is_noted_not_fatal(self):
        cases = {"list": [1, 2, 3], "iters": {"num_iterations": "10", "config": {"block_pattern": ["T"]}},
                 "config": {"num_iterations": 1, "config": [1]},
                 "pattern": {"num_iterations": 1, "config": {"block_pattern": 7, "model_tag": 5}}}
        for name, info in cases.items():
            write_run(os.path.join(self.dir, name), [step_line(1, 3.0)])
            with open(os.path.join(self.dir, name, "run.json"), "w") as f:
                json.dump(info, f)
        page = self.report(*cases)
        self.assertEqual(len(page.rows("runs")), 4)
        notes = self.markdown()
        for needle in ("run.json is not a JSON object", "'num_iterations' is not an integer",
                       "run.json: 'config' is not an object", "'block_pattern' is not a list or a string",
                       "'model_tag' is not a string"):
            self.assertIn(needle, notes)

    def test_noise_floor_marks_differences_within_the_seed_spread(self):
        val = {"TT": (1.00, 1.02), "TM": (1.01, 1.03), "MM": (1.10, 1.12)}  # each spread: sd 0.0141
        names = []
        for pattern, losses in val.items():
            for seed, loss in enumerate(losses):
                name = f"{pattern}-s{seed}"
                names.append(name)
                write_run(os.path.join(self.dir, name), [step_line(1, 2.0), {"step": 1, "val_loss": loss}],
                          num_iterations=1, pattern=pattern, seed=seed)
        page = self.report(*names)
        cells = {row["block pattern"]: row["val loss"] for row in page.rows("seed-groups")}
        self.assertTrue(cells["T×2"].endswith("(best)"), cells)
        self.assertTrue(cells["T M"].endswith("(≈ best)"), cells)  # 0.01 from the best, under 0.0141
        self.assertFalse(cells["M×2"].endswith(")"), cells)  # 0.10 away: a real difference
        floors = {row["metric"]: row["noise floor"] for row in page.rows("noise-floor")}
        self.assertEqual(floors["val loss"], "0.0141")
        self.assertIn("Noise floor", self.markdown())

    def test_groups_of_one_pattern_are_told_apart_by_their_setting(self):
        names = []
        for boundaries, bos, loss in (("cross", -1, 1.0), ("reset", 256, 0.9)):
            for seed in (0, 1):
                name = f"{boundaries}-s{seed}"
                names.append(name)
                write_run(os.path.join(self.dir, name), [step_line(1, 2.0), {"step": 1, "val_loss": loss + seed / 100}],
                          num_iterations=1, pattern="TT", seed=seed)
                info_path = os.path.join(self.dir, name, "run.json")
                with open(info_path) as f:
                    info = json.load(f)
                info["config"].update({"document_boundaries": boundaries, "bos_token_id": bos})
                with open(info_path, "w") as f:
                    json.dump(info, f)
        write_run(os.path.join(self.dir, "other"), [step_line(1, 2.0)], num_iterations=1, pattern="MM")
        page = self.report(*names, "other")
        labels = [row["block pattern"] for row in page.rows("seed-groups")]
        # The derived bos_token_id is not named; a pattern nobody shares keeps its plain label.
        self.assertEqual(labels, ["T×2, document_boundaries=cross", "T×2, document_boundaries=reset", "M×2"])

    def test_a_matched_stack_outside_two_percent_is_flagged(self):
        for name, block in (("near", 1010), ("far", 1100)):
            write_run(os.path.join(self.dir, name), [step_line(1, 2.0)], num_iterations=1)
            with open(os.path.join(self.dir, name, "sweep_match.json"), "w") as f:
                json.dump({"metric": "params", "block": block, "all_T": 1000, "overrides": ""}, f)
        page = self.report("near", "far")
        cells = {row["run"]: row["matched block params (this / all-T)"] for row in page.rows("runs")}
        self.assertEqual(cells["near"], "1,010 / 1,000 (+1.0%)")
        self.assertEqual(cells["far"], "1,100 / 1,000 (+10.0%) ⚠ outside 2%")
        self.assertIn("far: its block params are more than 2% from the all-T stack's", self.markdown())

    def test_length_extrapolation_records_make_a_table_and_charts(self):
        lines = [step_line(1, 2.0), {"step": 1, "val_loss": 1.5, "acc_assoc_recall": 0.5},
                 {"step": 1, "eval_seq_len": 64, "val_loss": 1.7, "acc_assoc_recall": 0.25},
                 {"step": 1, "eval_seq_len": 128, "val_loss": 2.5, "acc_assoc_recall": 0.125}]
        write_run(os.path.join(self.dir, "long"), lines, num_iterations=1)
        info_path = os.path.join(self.dir, "long", "run.json")
        with open(info_path) as f:
            info = json.load(f)
        info["config"]["max_seq_len"] = 32
        with open(info_path, "w") as f:
            json.dump(info, f)
        page = self.report("long")
        row = page.rows("by-length")[0]
        self.assertEqual([row[f"val loss @ {n}"] for n in (32, 64, 128)], ["1.5000", "1.7000", "2.5000"])
        self.assertEqual([row[f"acc_assoc_recall @ {n}"] for n in (32, 64, 128)], ["0.5000", "0.2500", "0.1250"])
        self.assertEqual(page.rows("runs")[0]["val loss"], "1.5000")  # the length records are not evaluations
        for chart in ("chart-val-loss-length", "chart-recall-length"):
            self.assertTrue(png_ok(page.figures[chart]), chart)

    def test_unwritable_outputs_are_clear_errors(self):
        write_run(os.path.join(self.dir, "ok"), [step_line(1, 3.0)], num_iterations=1)
        run_dir = os.path.join(self.dir, "ok")
        a_file = os.path.join(self.dir, "a_file")
        open(a_file, "w").close()
        for args, needle in [(["--out", self.dir], "is a folder"),
                             (["--out", os.path.join(a_file, "report.html")], "cannot write the report"),
                             (["--out", os.path.join(self.dir, "r.html"), "--save-charts", a_file],
                              "cannot write the report")]:
            r = run_report(run_dir, *args)
            self.assertEqual(r.returncode, 2, args)
            self.assertRegex(r.stderr, "^error: ")
            self.assertIn(needle, r.stderr, args)
            self.assertNotIn("Traceback", r.stderr)


# ---------------------------------------------------------------------------------------------
# --tensorboard: the event files read back with TensorBoard's own reader

def f32(value):
    """A value as TensorBoard stores a scalar (float32) and reads it back."""
    return struct.unpack("f", struct.pack("f", value))[0]


# The tag each metrics key must get, spelled out here rather than derived the way report.py does.
TRAIN_TAGS = {"loss": "train/loss", "loss_ema": "train/loss_ema", "lr_mult": "train/lr_mult",
              "grad_norm": "train/grad_norm", "dt_ms": "perf/dt_ms", "tok_per_s": "perf/tok_per_s", "mfu": "perf/mfu",
              "tokens_seen": "train/tokens_seen"}
EVAL_TAGS = {"val_loss": "val/loss", "val_bpb": "val/bpb", "acc_induction": "val/induction_acc",
             "acc_assoc_recall": "val/assoc_recall_acc"}


def expected_scalars(metrics_file):
    """{(tag, step): float32 value} from a metrics.jsonl, read independently of report.py: the
    later line of a repeated step wins, null / NaN / infinite values have no point."""
    latest = {}  # (kind of record, step) → the record's last line
    for record in read_jsonl(metrics_file):
        kind = "train" if "loss" in record else record.get("eval_seq_len", "val")
        latest[(kind, record["step"])] = record
    out = {}
    for (kind, step), record in latest.items():
        tags = TRAIN_TAGS if kind == "train" else EVAL_TAGS
        section = "val" if kind in ("train", "val") else f"val_len{kind}"
        for key, value in record.items():
            if key not in ("step", "eval_seq_len") and value is not None and math.isfinite(value):
                out[(tags[key].replace("val/", section + "/", 1), step)] = f32(value)
    return out


def read_events(folder):
    """{(tag, step): value} of a TensorBoard run folder, the number of scalar events (a step twice
    would make it larger than the dict), the wall times of train/loss, and the run's text."""
    from tensorboard.backend.event_processing import event_accumulator as ea
    acc = ea.EventAccumulator(folder, size_guidance={ea.SCALARS: 0, ea.TENSORS: 0})  # 0: keep every event
    acc.Reload()
    values, count = {}, 0
    for tag in acc.Tags()["scalars"]:
        for event in acc.Scalars(tag):
            values[(tag, event.step)] = event.value
            count += 1
    wall = [e.wall_time for e in acc.Scalars("train/loss")] if "train/loss" in acc.Tags()["scalars"] else []
    text = [t.tensor_proto.string_val[0].decode() for t in acc.Tensors("run/text_summary")] \
        if "run/text_summary" in acc.Tags()["tensors"] else []
    return values, count, wall, text


def sweep_lines(pattern, seed):
    """A run's metrics: values float32 cannot hold exactly, a resume that repeats steps 3 and 4,
    null and non-finite values, an extra numeric key, evaluations at steps 0 and 4, and the final
    model at two longer lengths."""
    base = {"TT": 3.0, "TM": 2.5}[pattern] + seed / 10

    def step(s, loss, **extra):
        values = dict(loss_ema=loss + 1 / 3, lr_mult=1 - s / 7, dt_ms=100 + s / 9, tok_per_s=12345.678 + s,
                      grad_norm=0.1 * s + 1 / 11, mfu=1.7 + s / 13, tokens_seen=128 * s)
        return step_line(s, loss, **{**values, **extra})

    lines = [{"step": 0, "val_loss": base + 0.7, "val_bpb": base + 0.9, "acc_induction": 0.0, "acc_assoc_recall": 0.1}]
    lines += [step(s, base - s / 17) for s in range(1, 5)]
    lines += [step(s, base - s / 19) for s in (3, 4)]  # resumed from step 2: these lines win
    lines += [step(5, base - 5 / 19, grad_norm=None), '{"step": 6, "loss": NaN, "loss_ema": Infinity, "dt_ms": 101}']
    lines += [{"step": 4, "val_loss": base / 3, "val_bpb": None, "acc_induction": 0.3125, "acc_assoc_recall": 2 / 3},
              {"step": 6, "eval_seq_len": 64, "val_loss": base / 7, "acc_assoc_recall": 0.2},
              {"step": 6, "eval_seq_len": 128, "val_loss": base / 9, "acc_assoc_recall": 1 / 9}]
    return lines


class ReportTensorBoard(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="hgpt_report_tb_")
        self.tb = os.path.join(self.dir, "tb")
        self.names = [f"{p}-s{s}" for p in ("TT", "TM") for s in (0, 1)]
        for name in self.names:
            pattern, seed = name.split("-s")
            write_run(os.path.join(self.dir, name), sweep_lines(pattern, int(seed)), num_iterations=6, pattern=pattern,
                      seed=int(seed))

    def tearDown(self):
        shutil.rmtree(self.dir)

    def export(self, *names, env=None):
        return subprocess.run([sys.executable, REPORT, *[os.path.join(self.dir, n) for n in names],
                               "--out", os.path.join(self.dir, "report.html"), "--tensorboard", self.tb],
                              capture_output=True, text=True, env=env or ENV)

    def test_every_scalar_of_every_run_is_read_back_at_its_step(self):
        r = self.export(*self.names)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"tensorboard: {self.tb}", r.stdout)
        self.assertTrue(os.path.exists(os.path.join(self.dir, "report.html")))  # the report itself, as without the flag
        self.assertEqual(sorted(os.listdir(self.tb)), sorted(self.names))  # one TensorBoard run per run folder
        for name in self.names:
            folder = os.path.join(self.tb, name)
            self.assertEqual(len([f for f in os.listdir(folder) if f.startswith("events.out.tfevents.")]), 1, name)
            expected = expected_scalars(os.path.join(self.dir, name, "metrics.jsonl"))
            # What the fixture must have produced, so that an empty or partial read-back cannot match.
            self.assertEqual(len(expected), 4 * 8 + 7 + 1 + 4 + 3 + 2 * 2, name)  # steps 1–4, 5, 6; evaluations; lengths
            self.assertEqual({tag.split("/")[0] for tag, _ in expected}, {"train", "perf", "val", "val_len64", "val_len128"})
            values, count, wall, text = read_events(folder)
            self.assertEqual(values, expected, name)
            self.assertEqual(count, len(expected), name)  # no step written twice
            self.assertEqual(values[("train/loss", 3)], f32(({"TT": 3.0, "TM": 2.5}[name[:2]] + int(name[-1]) / 10) - 3 / 19))
            # Wall times advance by each step's dt_ms: TensorBoard's relative axis is training time.
            dts = [100 + s / 9 for s in range(1, 6)]
            self.assertEqual(len(wall), 5)
            for i in range(1, 5):
                self.assertAlmostEqual(wall[i] - wall[i - 1], dts[i] / 1000, places=4)
            self.assertEqual(len(text), 1)
            self.assertIn(name, text[0])
            self.assertIn('"seed": ' + name[-1], text[0])

    def test_a_second_export_replaces_the_first(self):
        for _ in range(2):
            r = self.export(self.names[0])
            self.assertEqual(r.returncode, 0, r.stderr)
        folder = os.path.join(self.tb, self.names[0])
        self.assertEqual(len(os.listdir(folder)), 1)
        values, count, _, _ = read_events(folder)
        self.assertEqual(values, expected_scalars(os.path.join(self.dir, self.names[0], "metrics.jsonl")))
        self.assertEqual(count, len(values))

    def test_runs_with_the_same_model_tag_get_their_own_folders(self):
        for name in ("a/d4", "b/d4"):
            write_run(os.path.join(self.dir, name), [step_line(1, 3.0 + len(name) / 7)], num_iterations=1)
        r = self.export("a/d4", "b/d4")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sorted(os.listdir(self.tb)), ["a_d4", "b_d4"])
        for name in ("a_d4", "b_d4"):
            self.assertEqual(read_events(os.path.join(self.tb, name))[0][("train/loss", 1)], f32(3.0 + 4 / 7))

    def test_without_tensorboard_it_is_one_error_line_naming_setup(self):
        # A tensorboard package first on the path that fails to import, as if it were not installed.
        hide = os.path.join(self.dir, "hide")
        os.makedirs(os.path.join(hide, "tensorboard"))
        with open(os.path.join(hide, "tensorboard", "__init__.py"), "w") as f:
            f.write("raise ModuleNotFoundError(\"No module named 'tensorboard'\", name='tensorboard')\n")
        env = dict(ENV, PYTHONPATH=hide + os.pathsep + ENV.get("PYTHONPATH", ""))
        probe = subprocess.run([sys.executable, "-c", "import tensorboard"], capture_output=True, text=True, env=env)
        self.assertNotEqual(probe.returncode, 0, "the stub did not hide tensorboard")
        r = self.export(self.names[0], env=env)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertRegex(r.stderr, r"^error: --tensorboard needs the tensorboard package")
        self.assertIn("bash scripts/setup.sh", r.stderr)
        self.assertFalse(os.path.exists(self.tb))
        self.assertFalse(os.path.exists(os.path.join(self.dir, "report.html")))  # nothing half-written
        # Without the flag the report does not need tensorboard.
        plain = subprocess.run([sys.executable, REPORT, os.path.join(self.dir, self.names[0])],
                               capture_output=True, text=True, env=env)
        self.assertEqual(plain.returncode, 0, plain.stderr)

    def test_unwritable_tensorboard_folder_is_a_clear_error(self):
        a_file = os.path.join(self.dir, "a_file")
        open(a_file, "w").close()
        self.tb = a_file
        r = self.export(self.names[0])
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertRegex(r.stderr, "^error: --tensorboard '.*a_file' is a file, not a folder")
        self.assertNotIn("Traceback", r.stderr)
        # Refused before anything is written: no report without its event files.
        self.assertFalse(os.path.exists(os.path.join(self.dir, "report.html")))
        # A folder that cannot be made (under the file): also one line, also before the report.
        self.tb = os.path.join(a_file, "sub")
        r = self.export(self.names[0])
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertRegex(r.stderr, "^error: cannot write the TensorBoard event files")
        self.assertFalse(os.path.exists(os.path.join(self.dir, "report.html")))


# ---------------------------------------------------------------------------------------------
# Two short real runs of build/base_train, one of them resumed

class ReportRealRuns(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="hgpt_report_real_")
        common = [BASE_TRAIN, TINY_CONFIG, *TINY, "--num_iterations=6", "--eval_every=3", "--save_every=3",
                  f"--out_dir={cls.dir}"]
        cls.plain = run(common + ["--block_pattern=TM", "--model_tag=plain"])
        # The resumed run: finish, drop the final checkpoint's meta (as if killed before it was
        # complete), resume from step 3: base_train cuts metrics.jsonl back to step 3 first, so
        # steps 4..6 and the evaluation at 6 appear once.
        first = run(common + ["--block_pattern=MT", "--model_tag=resumed"])
        assert first.returncode == 0, first.stdout + first.stderr
        os.remove(os.path.join(cls.dir, "resumed", "meta_000006.json"))
        cls.resumed = run(common + ["--block_pattern=MT", "--model_tag=resumed", "--resume=true"])
        cls.out = os.path.join(cls.dir, "report.html")
        cls.report = run_report(os.path.join(cls.dir, "plain"), os.path.join(cls.dir, "resumed"), "--out", cls.out)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir)

    def test_runs_and_report_succeed(self):
        for r in (self.plain, self.resumed, self.report):
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("resumed from", self.resumed.stdout)
        steps = [r["step"] for r in read_jsonl(os.path.join(self.dir, "resumed", "metrics.jsonl")) if "loss" in r]
        self.assertEqual(steps, [1, 2, 3, 4, 5, 6])

    def test_table_rows_hold_the_runs_values(self):
        page = ReportPage(self.out)
        self.assertEqual(page.tables["runs"]["ids"], ["plain", "resumed"])
        rows = {row["run"]: row for row in page.rows("runs")}
        for tag, pattern, compact in (("plain", "TM", "T M"), ("resumed", "MT", "M T")):
            row = rows[tag]
            # The independent reference: base_train's own dry-run summary and the raw metrics file.
            dry = json.loads(run([BASE_TRAIN, TINY_CONFIG, *TINY, f"--block_pattern={pattern}", "--dry-run",
                                  "--json"]).stdout)
            records = read_jsonl(os.path.join(self.dir, tag, "metrics.jsonl"))
            last_val = [r for r in records if "val_loss" in r][-1]
            last_step = [r for r in records if "loss" in r][-1]
            by_step = {r["step"]: r for r in records if "loss" in r}  # later lines overwrite
            self.assertEqual(row["block pattern"], compact)
            self.assertEqual(row["parameters (T / M)"],
                             f"{dry['parameters_by_block']['T']:,} / {dry['parameters_by_block']['M']:,}")
            self.assertEqual(row["tokens trained"], f"{6 * 128:,}")
            self.assertEqual(row["status"], "done")
            self.assertEqual(row["val loss"], f"{last_val['val_loss']:.4f}")
            self.assertEqual(row["val bpb"], f"{last_val['val_bpb']:.4f}")
            self.assertEqual(row["final loss (EMA)"], f"{last_step['loss_ema']:.4f}")
            self.assertEqual(row["median tok/s"], f"{statistics.median(r['tok_per_s'] for r in by_step.values()):,.0f}")
            self.assertEqual(row["train time (s)"], f"{sum(r['dt_ms'] for r in by_step.values()) / 1000:.1f}")
            self.assertEqual(row["device"], "cpu")
            self.assertEqual(row["world size"], "1")
            for task in ("acc_selective_copy", "acc_induction", "acc_assoc_recall"):
                if task in last_val:
                    self.assertEqual(row[task], f"{last_val[task]:.4f}")

    def test_charts_are_embedded_pngs(self):
        page = ReportPage(self.out)
        expected = {"loss-step", "loss-tokens", "loss-time", "val-loss", "val-bpb", "tok-s", "lr-mult", "grad-norm"}
        self.assertLessEqual({f"chart-{c}" for c in expected}, set(page.figures))
        self.assertTrue(any(f.startswith("chart-acc-") for f in page.figures))
        for chart, src in page.figures.items():
            self.assertTrue(png_ok(src), chart)

    def test_markdown_summary_beside_the_html(self):
        with open(os.path.join(self.dir, "report.md")) as f:
            md = f.read()
        self.assertIn("| plain | T M |", md)
        self.assertIn("| resumed | M T |", md)

    def test_base_train_prints_the_report_command_and_it_works(self):
        lines = [l for l in self.plain.stdout.splitlines() if l.startswith("report")]
        self.assertEqual(len(lines), 1, self.plain.stdout)
        command = lines[0].split(": ", 1)[1].split()
        self.assertEqual(command[:2], [".venv/bin/python", "scripts/report.py"])
        self.assertEqual(command[2:], [os.path.join(self.dir, "plain")])
        r = run([sys.executable, *command[1:]], cwd=SOURCE_DIR)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.exists(os.path.join(self.dir, "plain", "report.html")))
        self.assertTrue(os.path.exists(os.path.join(self.dir, "plain", "report.md")))


# ---------------------------------------------------------------------------------------------

class RealTextSweep(unittest.TestCase):
    """scripts/real_text_sweep.sh end to end at a toy size: Debian's KJV text → one document per
    chapter → tokenizer → shards with a fixed validation split → the sweep and its report."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="hgpt_real_text_")
        self.env = dict(ENV, HGPT_BUILD_DIR=BUILD_DIR, HGPT_PYTHON=sys.executable)

    def tearDown(self):
        shutil.rmtree(self.dir)

    def run_script(self, *args):
        return subprocess.run([os.path.join(SOURCE_DIR, "scripts/real_text_sweep.sh"), "--out", self.dir,
                               "--patterns", "all-T,all-M", "--seeds", "0", "--steps", "2", "--vocab_size", "300",
                               *args, *TINY, "--eval_every=-1", "--extrapolate_to=2"],
                              capture_output=True, text=True, env=self.env)

    def test_bible_chapters_become_shards_and_a_report(self):
        r = self.run_script()
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        chapters = read_jsonl(os.path.join(self.dir, "corpus", "kjv.jsonl"))
        self.assertEqual(len(chapters), 1189)  # the KJV's chapters, Genesis 1 to Revelation 22
        self.assertEqual(chapters[0]["text"].split("\n")[:2],
                         ["Genesis 1", "In the beginning God created the heaven and the earth."])
        self.assertTrue(chapters[-1]["text"].startswith("Revelation 22\n"))
        tok = json.load(open(os.path.join(self.dir, "tokenizer", "tokenizer.json")))
        self.assertEqual(tok["vocab_size"], 300)
        shards = sorted(os.listdir(os.path.join(self.dir, "shards")))
        self.assertIn("data_val_000000.bin", shards)
        for tag in ["all-T-s0", "all-M-s0"]:
            config = json.load(open(os.path.join(self.dir, "sweep", tag, "run.json")))["config"]
            self.assertEqual(config["data"], os.path.join(self.dir, "shards"))
            self.assertEqual(config["vocab_size"], 300)
        page = ReportPage(os.path.join(self.dir, "sweep", "report.html"))
        self.assertEqual(page.tables["runs"]["ids"], ["all-T-s0", "all-M-s0"])
        # The same command again redoes nothing.
        again = self.run_script()
        self.assertEqual(again.returncode, 0, again.stdout + again.stderr)
        self.assertEqual(again.stdout.count("already done, skipped"), 2)
        self.assertNotIn("training a tokenizer", again.stdout)

    def test_keys_the_script_sets_are_refused(self):
        # Its own (data, tokenizer) and the sweep's: refused before any data is built.
        for override, fix in [("--data=elsewhere", "makes the data"), ("--model_tag=x", "model_tag"),
                              ("--out_dir=x", "--out DIR"), ("--seed=3", "--seeds"), ("--resume=true", "same command"),
                              ("--block_pattern=T", "--patterns"), ("--overwrite=true", "remove a run's folder")]:
            r = self.run_script(override)
            self.assertEqual(r.returncode, 2, override)
            self.assertEqual(r.stderr.count("error: "), 1, r.stderr)
            self.assertIn(fix, r.stderr)
            self.assertEqual(os.listdir(self.dir), [], override)

    def test_bad_arguments_stop_before_the_data_is_made(self):
        # base_train's own check of the overrides, and the sweep's of its flags, before the corpus.
        for args, needle in [(["--Seed=3"], "unknown key 'Seed'"), (["--depth=two"], "depth"),
                             (["--seeds", "007"], "--seeds"), (["--patterns", "all-Q"], "all-Q"),
                             (["--patterns", "all-M2", "--mamba2_headdim=48"], "mamba2_headdim"),
                             (["--vocab_size", "200"], "--vocab_size must be an integer in [265")]:
            r = self.run_script(*args)
            self.assertEqual(r.returncode, 2, (args, r.stdout + r.stderr))
            self.assertEqual(r.stderr.count("error: "), 1, r.stderr)
            self.assertIn(needle, r.stderr)
            self.assertEqual(os.listdir(self.dir), [], args)


class PatternSweep(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="hgpt_sweep_")
        self.env = dict(ENV, HGPT_BUILD_DIR=BUILD_DIR, HGPT_PYTHON=sys.executable)

    def tearDown(self):
        shutil.rmtree(self.dir)

    def sweep(self, *args):
        return subprocess.run([SWEEP, "--config", TINY_CONFIG, "--out", self.dir, *args, *TINY, "--eval_every=-1"],
                              capture_output=True, text=True, env=self.env)

    def test_two_patterns_two_seeds_give_four_runs_and_one_report(self):
        r = self.sweep("--patterns", "all-T,alternating", "--seeds", "0,1", "--steps", "3")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        tags = ["all-T-s0", "all-T-s1", "alternating-s0", "alternating-s1"]
        for tag in tags:
            self.assertTrue(os.path.exists(os.path.join(self.dir, tag, "meta_000003.json")), tag)
        page = ReportPage(os.path.join(self.dir, "report.html"))
        self.assertEqual(page.tables["runs"]["ids"], tags)
        rows = {row["run"]: row for row in page.rows("runs")}
        self.assertEqual([rows[t]["block pattern"] for t in tags], ["T×2", "T×2", "T M", "T M"])
        groups = page.rows("seed-groups")
        self.assertEqual([(g["block pattern"], g["runs"], g["seeds"]) for g in groups],
                         [("T×2", "2", "0,1"), ("T M", "2", "0,1")])
        self.assertIn("±", groups[0]["val loss"])
        # Everything but the pattern and the seed is equal: same seed, same data → same first batch,
        # so the two patterns' first losses differ only through the model.
        configs = [json.load(open(os.path.join(self.dir, t, "run.json")))["config"] for t in tags]
        for c in configs[1:]:
            self.assertEqual({k: v for k, v in c.items() if k not in ("seed", "model_tag", "block_pattern")},
                             {k: v for k, v in configs[0].items() if k not in ("seed", "model_tag", "block_pattern")})
        # The same command again finds every run finished.
        again = self.sweep("--patterns", "all-T,alternating", "--seeds", "0,1", "--steps", "3")
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertEqual(again.stdout.count("already done, skipped"), 4)
        # A run with a checkpoint short of the planned steps resumes from it.
        longer = self.sweep("--patterns", "all-T", "--seeds", "0", "--steps", "4")
        self.assertEqual(longer.returncode, 0, longer.stdout + longer.stderr)
        self.assertIn("(resuming)", longer.stdout)
        steps = [r["step"] for r in read_jsonl(os.path.join(self.dir, "all-T-s0", "metrics.jsonl")) if "loss" in r]
        self.assertEqual(steps, [1, 2, 3, 4])

    def test_what_a_run_would_refuse_stops_the_sweep_before_any_run(self):
        # Each pattern is checked as its run will be (base_train --check), so a setting only some
        # block kinds use, missing data or a duplicate run stops the sweep before the first run.
        a_file = os.path.join(self.dir, "a_file")
        open(a_file, "w").close()
        cases = [(["--patterns", "all-T,all-M2", "--mamba2_headdim=48"], "mamba2_headdim"),
                 (["--patterns", "all-T", "--data=/nonexistent"], "/nonexistent"),
                 (["--patterns", "all-T", "--hybrid_layer_pattern=M*"], "not hybrid_layer_pattern"),
                 (["--patterns", "all-T,all-T"], "listed twice in --patterns"),
                 (["--patterns", "all-T", "--seeds", "0,0"], "seed 0 is listed twice"),
                 (["--patterns", "all-T", "--out", os.path.join(a_file, "sub")], "is a file, not a folder")]
        for args, needle in cases:
            for check in ([], ["--check"]):
                r = self.sweep("--seeds", "0", "--steps", "2", *check, *args)
                self.assertEqual(r.returncode, 2, str(args) + ": " + r.stdout + r.stderr)
                self.assertEqual(r.stderr.count("error: "), 1, r.stderr)
                self.assertIn(needle, r.stderr, args)
                self.assertEqual(sorted(os.listdir(self.dir)), ["a_file"], args)

    def test_a_config_file_that_says_resume_still_starts_fresh_runs(self):
        config = os.path.join(self.dir, "resuming.json")
        with open(TINY_CONFIG) as f:
            settings = json.load(f)
        settings["resume"] = True
        with open(config, "w") as f:
            json.dump(settings, f)
        r = subprocess.run([SWEEP, "--config", config, "--out", os.path.join(self.dir, "sweep"), "--patterns", "all-T",
                            "--seeds", "0", "--steps", "2", *TINY, "--eval_every=-1"],
                           capture_output=True, text=True, env=self.env)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertTrue(os.path.exists(os.path.join(self.dir, "sweep", "all-T-s0", "meta_000002.json")))

    def test_a_sweep_continues_only_with_the_settings_its_runs_were_trained_with(self):
        first = self.sweep("--patterns", "all-T", "--seeds", "0", "--steps", "2")
        self.assertEqual(first.returncode, 0, first.stdout + first.stderr)
        command = open(os.path.join(self.dir, "command.txt")).read()
        r = self.sweep("--patterns", "all-T,all-M", "--seeds", "0", "--steps", "2", "--matrix_lr=0.5")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("all-T-s0 was trained with matrix_lr=0.005, this command gives matrix_lr=0.5", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "all-M-s0")))
        self.assertEqual(open(os.path.join(self.dir, "command.txt")).read(), command)
        # Training longer is the same sweep continued.
        longer = self.sweep("--patterns", "all-T", "--seeds", "0", "--steps", "3")
        self.assertEqual(longer.returncode, 0, longer.stdout + longer.stderr)

    def test_bad_pattern_stops_before_any_run(self):
        r = self.sweep("--patterns", "all-T,zigzag", "--seeds", "0", "--steps", "3")
        self.assertEqual(r.returncode, 2)
        self.assertIn("error: unknown block pattern 'zigzag'", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "all-T-s0")))

    def test_keys_the_sweep_sets_itself_are_refused_naming_its_flag(self):
        for override, flag in [("--out_dir=elsewhere", "--out"), ("--seed=3", "--seeds"),
                               ("--block_pattern=TT", "--patterns"), ("--model_tag=x", "<pattern>-s<seed>"),
                               ("--resume=true", "same command"), ("--overwrite=true", "remove a run's folder")]:
            r = self.sweep("--patterns", "all-T", "--seeds", "0", "--steps", "2", override)
            self.assertEqual(r.returncode, 2, override + ": " + r.stdout + r.stderr)
            self.assertIn("error: ", r.stderr)
            self.assertIn(flag, r.stderr, override)
        self.assertEqual(os.listdir(self.dir), [])

    def test_bad_seeds_patterns_and_out_stop_before_any_run(self):
        cases = [(["--seeds", "007"], "--seeds"), (["--seeds", "99999999999999999999"], "--seeds"),
                 (["--seeds", "0,,1"], "--seeds"), (["--patterns", ""], "--patterns is empty"),
                 (["--patterns", ","], "--patterns is empty")]
        for args, needle in cases:
            r = self.sweep(*(["--patterns", "all-T", "--seeds", "0", "--steps", "2"] + args))
            self.assertEqual(r.returncode, 2, str(args) + ": " + r.stdout + r.stderr)
            self.assertIn(needle, r.stderr, args)
        a_file = os.path.join(self.dir, "a_file")
        open(a_file, "w").close()
        r = subprocess.run([SWEEP, "--config", TINY_CONFIG, "--out", a_file, "--patterns", "all-T", "--seeds", "0",
                            "--steps", "2", *TINY], capture_output=True, text=True, env=self.env)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("is not a folder", r.stderr)

    def test_a_run_stopped_before_its_first_checkpoint_starts_again(self):
        run_dir = os.path.join(self.dir, "all-T-s0")
        os.makedirs(run_dir)
        with open(os.path.join(run_dir, "metrics.jsonl"), "w") as f:  # killed after one step, before any save
            f.write(json.dumps({"step": 1, "loss": 9.0}) + "\n")
        r = self.sweep("--patterns", "all-T", "--seeds", "0", "--steps", "3")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("(restarting: stopped before its first checkpoint)", r.stdout)
        records = [r for r in read_jsonl(os.path.join(run_dir, "metrics.jsonl")) if "loss" in r]
        self.assertEqual([r["step"] for r in records], [1, 2, 3])
        self.assertNotEqual(records[0]["loss"], 9.0)

    def test_match_params_gives_each_stack_the_all_T_block_parameters(self):
        r = self.sweep("--patterns", "all-T,all-M", "--seeds", "0", "--steps", "1", "--match", "params")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        def read(*parts):
            with open(os.path.join(self.dir, *parts)) as f:
                return json.load(f)
        info = {t: read(t, "run.json") for t in ("all-T-s0", "all-M-s0")}
        match = read("all-M-s0", "sweep_match.json")
        reference = sum(info["all-T-s0"]["parameters_by_block"].values())
        trained = sum(info["all-M-s0"]["parameters_by_block"].values())  # the run trained what was matched
        self.assertEqual((match["block"], match["all_T"]), (trained, reference))
        self.assertLessEqual(abs(trained / reference - 1), 0.02)
        knobs = ("mamba_expand", "aspect_ratio")  # the matched stack differs in one of them
        self.assertTrue(any(info["all-M-s0"]["config"][k] != info["all-T-s0"]["config"][k] for k in knobs))
        cells = {row["run"]: row["matched block params (this / all-T)"]
                 for row in ReportPage(os.path.join(self.dir, "report.html")).rows("runs")}
        self.assertEqual(cells["all-T-s0"], f"{reference:,} / {reference:,} (+0.0%)")
        self.assertTrue(cells["all-M-s0"].startswith(f"{trained:,} / {reference:,} ("), cells)
        bad = self.sweep("--patterns", "all-T", "--seeds", "0", "--steps", "1", "--match", "size")
        self.assertEqual(bad.returncode, 2)
        self.assertIn("--match must be params or flops", bad.stderr)

    def test_runs_save_a_quarter_of_the_way_unless_told(self):
        r = self.sweep("--patterns", "all-T", "--seeds", "0", "--steps", "8")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        metas = sorted(f for f in os.listdir(os.path.join(self.dir, "all-T-s0")) if f.startswith("meta_"))
        self.assertEqual(metas, ["meta_%06d.json" % s for s in (2, 4, 6, 8)])


if __name__ == "__main__":
    unittest.main()
