#!/usr/bin/env python3
"""scan_ptx_check.py — checks the structure the CUDA selective scan is built for, in its PTX, where
no GPU is needed: every kernel instance's loop over the states (the innermost loop holding a
block barrier) has exactly one `bar.sync`, one `ex2` per item (the decays; the backward reuses
them for its reverse scan), and issues all its global loads before its first shuffle (the next
state's B/C are loaded while the current state is scanned). The backward's loop also hands dB/dC
to its atomics through one 128-bit shared store per lane (the striped layout).

    scripts/scan_ptx_check.py --nvcc NVCC --arch compute_90 [--ptx-out FILE]

Compiles kernels/selective_scan/selective_scan.cu to PTX with the kernels' own code-generation
flags, prints one line per instance, exits 1 naming each instance that breaks a rule. CTest runs
it as CudaKernels.ScanPtxStructure in CUDA builds.
"""
import argparse
import pathlib
import re
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCE = ROOT / "kernels" / "selective_scan" / "selective_scan.cu"
ITEMS = 4  # steps per thread (scan_thread.h, kItems)
FLAGS = ["-O3", "--use_fast_math", "--expt-relaxed-constexpr", "-std=c++17"]


def compile_ptx(nvcc, arch, out):
    subprocess.run([nvcc, "-ptx", f"-arch={arch}", *FLAGS, f"-I{ROOT}", str(SOURCE), "-o", str(out)], check=True)
    return out.read_text()


def entries(ptx):
    """(mangled name, body lines) of every kernel."""
    for chunk in re.split(r"\n(?=(?:\.visible |\.weak )?\.entry )", ptx)[1:]:
        yield re.search(r"\.entry\s+(\S+)\(", chunk).group(1), chunk.split("\n")


def loops(lines):
    """(first, last) line of each loop: a label and a later branch back to it."""
    labels = {m.group(1): i for i, l in enumerate(lines) if (m := re.match(r"\s*(\$L__BB\d+_\d+):", l))}
    for i, line in enumerate(lines):
        m = re.search(r"\bbra(?:\.uni)?\s+(\$L__BB\d+_\d+);", line)
        if m and m.group(1) in labels and labels[m.group(1)] < i:
            yield labels[m.group(1)], i


def check(name, lines):
    """Problems of one kernel instance (empty when it has the intended structure), and a summary."""
    with_barrier = [(a, b) for a, b in loops(lines) if any("bar.sync" in l for l in lines[a:b + 1])]
    if not with_barrier:
        return ["no loop with a block barrier"], ""
    first, last = min(with_barrier, key=lambda r: r[1] - r[0])
    body = lines[first:last + 1]
    where = lambda pattern: [i for i, l in enumerate(body) if re.search(pattern, l)]
    barriers, exps, shuffles = where(r"\bbar\.sync\b"), where(r"\bex2\.approx"), where(r"\bshfl\.sync")
    loads = where(r"\bld\.global")
    problems = []
    if len(barriers) != 1:
        problems.append(f"{len(barriers)} bar.sync per state step (want 1)")
    if len(exps) != ITEMS:
        problems.append(f"{len(exps)} ex2 per state step (want {ITEMS}: one decay per item)")
    if shuffles and any(i > shuffles[0] for i in loads):
        problems.append("a global load after the first shuffle (the next state's B/C are not prefetched)")
    if "bwd" in name and not where(r"\bst\.shared\.v4\.f32"):
        problems.append("no 128-bit shared store in the backward's state loop (dB/dC stripes)")
    summary = f"bar.sync {len(barriers)}, ex2 {len(exps)}, shfl {len(shuffles)}, ld.global {len(loads)}"
    return problems, summary


def short(name):
    m = re.search(r"scan_(fwd|bwd)_kernelI(\w+?)Li(\d+)E", name)
    return f"{m.group(1)} {m.group(2)} {m.group(3)} threads" if m else name


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nvcc", required=True)
    parser.add_argument("--arch", default="compute_90")
    parser.add_argument("--ptx-out", help="keep the PTX here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(args.ptx_out) if args.ptx_out else pathlib.Path(tmp) / "selective_scan.ptx"
        ptx = compile_ptx(args.nvcc, args.arch, out)
    failed, count = [], 0
    for name, lines in entries(ptx):
        count += 1
        problems, summary = check(name, lines)
        print(f"{short(name)} ({args.arch}): {summary}" + ("" if not problems else " — " + "; ".join(problems)))
        if problems:
            failed.append(short(name))
    if count != 18:
        failed.append(f"{count} kernel instances (want 18: fwd/bwd × 3 dtypes × 3 block sizes)")
    if failed:
        print("error: " + ", ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
