"""A/B of the workers' CPU per record: bench/pipeline.py run alternately with the workers of two
commits (same driver, same broker engine, same load), so a noisy shared host hits both alike.

    python bench/ab.py REF NEW [--rounds 2] [-- pipeline.py arguments, e.g. --seconds 60 --rate 4000]

Each commit is exported (git archive) to a temporary tree laid out as the installed package
(gatewatch/<folder> -> <folder>), and the workers import gatewatch from there (--workers-root).
Prints every run's "CPU microseconds per record" lines, then per stage and backlog the runs side
by side and the spread between runs of the same commit (how noisy the host was).
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("streams", "processors", "sinks", "schemas", "configs")
CPU_LINE = re.compile(r"CPU microseconds per record: (.*)")


def export(commit: str, dest: Path) -> Path:
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    for folder in FOLDERS:
        (dest / "gatewatch" / folder).symlink_to(dest / folder, target_is_directory=True)
    # the workers run `python -m gatewatch` from there (pipeline.py): make sure that is what they import
    where = subprocess.run([sys.executable, "-c", "import gatewatch.streams.stages.ingest as m; print(m.__file__)"],
                           cwd=dest, env={**os.environ, "PYTHONPATH": str(dest)}, capture_output=True, text=True)
    if not where.stdout.startswith(str(dest)):
        raise SystemExit(f"the workers of {commit} would import {where.stdout.strip() or where.stderr[-500:]}")
    return dest


def run(tree: Path, args: list[str]) -> tuple[list[dict[str, float]], str]:
    out = subprocess.run([sys.executable, str(ROOT / "bench/pipeline.py"), "--workers-root", str(tree), *args],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"pipeline.py failed with the workers of {tree}:\n{out.stderr[-3000:]}")
    per_backlog = [{k: float(v) for k, v in (kv.rsplit(" ", 1) for kv in m.group(1).split(", "))}
                   for m in CPU_LINE.finditer(out.stdout)]
    return per_backlog, out.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ref")
    ap.add_argument("new")
    ap.add_argument("--rounds", type=int, default=2, help="runs of each commit, alternating")
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    a, args = ap.parse_args(argv[:cut]), argv[cut + 1:]
    with tempfile.TemporaryDirectory() as tmp:
        trees = {c: export(c, Path(tmp) / f"t{i}") for i, c in enumerate((a.ref, a.new))}
        results: dict[str, list[list[dict[str, float]]]] = {a.ref: [], a.new: []}
        for r in range(a.rounds):
            for commit in ((a.ref, a.new) if r % 2 == 0 else (a.new, a.ref)):
                got, stdout = run(trees[commit], args)
                results[commit].append(got)
                print(f"--- round {r + 1}, workers of {commit}:")
                print("\n".join(line for line in stdout.splitlines() if line.startswith(("live phase", "capacity", "  CPU", "  ingest committed", "decision latency"))),
                      flush=True)
    backlogs = ("live phase", "live-density backlog", "dense backlog")
    print("\nCPU microseconds per record, each run (ref | new), and the new/ref ratio of the means:")
    for b, backlog in enumerate(backlogs):
        for stage in ("plain", "ingest", "signals", "decide"):
            ref = [run_[b][stage] for run_ in results[a.ref] if len(run_) > b]
            new = [run_[b][stage] for run_ in results[a.new] if len(run_) > b]
            if not ref or not new:
                continue
            spread = max(_spread(ref), _spread(new))
            print(f"  {backlog:20} {stage:8} ref {' '.join(f'{x:5.2f}' for x in ref)} | new "
                  f"{' '.join(f'{x:5.2f}' for x in new)}   -> {statistics.mean(new) / statistics.mean(ref):.2f}x"
                  f"   (same-commit spread up to {spread:.0%})")


def _spread(xs: list[float]) -> float:
    return (max(xs) - min(xs)) / statistics.mean(xs) if len(xs) > 1 and statistics.mean(xs) else 0.0


if __name__ == "__main__":
    main()
