#!/usr/bin/env python3
"""parquet_memory.py — peak memory and speed of `tokenize` on a nanochat-sized parquet shard.

Writes a shard shaped like nanochat's pretraining shards (one `text` column, zstd, row groups of
1,024 documents of a few KB) of about --mb megabytes, and the same documents as JSONL; trains a
tokenizer on a slice of them (or takes --tokenizer); then runs build/tokenize on each and prints
one JSON line per input: file size, peak resident memory of the process, seconds, tokens, and
whether the shards equal those written from the JSONL (the baseline, read line by line); first the
peak of the binary at rest (`--help`: LibTorch's libraries loaded), which every run includes.

  .venv/bin/python bench/parquet_memory.py [--mb 100] [--work /tmp/parquet_memory] [--threads 0]
"""
import argparse
import filecmp
import json
import os
import random
import subprocess
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("HGPT_BUILD_DIR", os.path.join(ROOT, "build"))


def pseudo_english(rng, words, chars):
    """Sentences of words drawn with a Zipf-like skew, about `chars` characters."""
    out, n = [], 0
    while n < chars:
        sentence = " ".join(rng.choices(words, weights=WEIGHTS, k=rng.randint(6, 24)))
        sentence = sentence[0].upper() + sentence[1:] + rng.choice([".", ".", ".", "?", "!"])
        out.append(sentence)
        n += len(sentence) + 1
    return " ".join(out)


def make_words(rng, count):
    syllables = ["th", "e", "an", "re", "on", "at", "en", "nd", "ti", "es", "or", "te", "of", "ed",
                 "is", "it", "al", "ar", "st", "to", "nt", "ng", "se", "ha", "as", "ou", "io", "le"]
    return ["".join(rng.choices(syllables, k=rng.randint(1, 4))) for _ in range(count)]


def write_corpus(path_parquet, path_jsonl, megabytes, rng):
    """Row groups of 1,024 documents until the parquet file reaches `megabytes`."""
    words = make_words(rng, 20000)
    global WEIGHTS
    WEIGHTS = [1.0 / (i + 1) for i in range(len(words))]
    schema = pa.schema([("text", pa.string())])
    with pq.ParquetWriter(path_parquet, schema, compression="zstd") as writer, open(path_jsonl, "w") as jsonl:
        while os.path.exists(path_parquet) and os.path.getsize(path_parquet) < megabytes * 1e6:
            docs = [pseudo_english(rng, words, int(rng.lognormvariate(7.6, 0.8))) for _ in range(1024)]
            writer.write_table(pa.table({"text": docs}, schema=schema), row_group_size=1024)
            for d in docs:
                jsonl.write(json.dumps({"text": d}) + "\n")


def run_measured(cmd):
    """Runs cmd; returns (seconds, peak RSS in MB, stderr) from the child's own rusage."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)} failed ({proc.returncode}):\n{stderr}")
    return time.monotonic() - start, usage.ru_maxrss / 1024, stderr


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=100, help="size of the parquet shard in MB")
    ap.add_argument("--work", default="/tmp/parquet_memory", help="folder for the corpus and the shards")
    ap.add_argument("--tokenizer", default="", help="a tokenizer folder; default: train one (vocab 8192)")
    ap.add_argument("--threads", type=int, default=0, help="tokenize --threads")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    shard = os.path.join(args.work, "shard_00000.parquet")
    jsonl = os.path.join(args.work, "shard_00000.jsonl")
    if not os.path.exists(shard) or os.path.getsize(shard) < args.mb * 1e6:
        print(f"[parquet_memory] writing a {args.mb:.0f} MB shard to {shard}", file=sys.stderr)
        open(shard, "wb").close()
        write_corpus(shard, jsonl, args.mb, random.Random(0))
    tokenizer = args.tokenizer or os.path.join(args.work, "tokenizer")
    if not args.tokenizer and not os.path.exists(os.path.join(tokenizer, "tokenizer.json")):
        subprocess.run([os.path.join(BUILD, "tok_train"), "--out", tokenizer, "--vocab_size", "8192",
                        "--max_chars", "2e7", shard], check=True, stderr=subprocess.DEVNULL)
    meta = pq.ParquetFile(shard).metadata
    # The binary at rest (its libraries loaded, no input): what the inputs add is measured above it.
    _, rest_mb, _ = run_measured([os.path.join(BUILD, "tokenize"), "--help"])
    print(json.dumps({"input": "none (tokenize --help)", "peak_rss_mb": round(rest_mb, 1)}), flush=True)
    outputs = {}
    for name, path in [("jsonl", jsonl), ("parquet", shard)]:
        out = os.path.join(args.work, f"tokens_{name}")
        subprocess.run(["rm", "-rf", out], check=True)
        seconds, peak_mb, stderr = run_measured([os.path.join(BUILD, "tokenize"), "--tokenizer", tokenizer,
                                                 "--out", out, "--threads", str(args.threads), path])
        outputs[name] = out
        tokens = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out)) // 2
        record = {"input": name, "file_mb": round(os.path.getsize(path) / 1e6, 1), "documents": meta.num_rows,
                  "row_groups": meta.num_row_groups, "peak_rss_mb": round(peak_mb, 1), "seconds": round(seconds, 1),
                  "tokens": tokens}
        if name == "parquet":
            names = sorted(os.listdir(outputs["jsonl"]))
            record["shards_equal_jsonl"] = names == sorted(os.listdir(out)) and all(
                filecmp.cmp(os.path.join(out, f), os.path.join(outputs["jsonl"], f), shallow=False) for f in names)
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
