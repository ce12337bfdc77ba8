"""What a `gatewatch` command costs before it does anything: CPU seconds of a process that runs one
command's --help, with its module alone imported (the table in streams/cli/main.py, as the CLI runs
now) against every command module imported first (what the CLI did before), alternated, as a ratio.

    python bench/cli_start.py [--rounds 15]

`gate status` runs once per analysis step of an Argo Rollouts or Flagger gate, `verify` once per
bundle an auditor checks: their start is paid each time. `policy hash` does its work (a real run on
the repository's configs/policies); a running worker also imports its stage's modules, which --help does not.
"""
from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
from pathlib import Path

POLICIES = str(Path(__file__).resolve().parents[1] / "configs" / "policies")  # from any working directory
COMMANDS = (["gate", "status", "--help"], ["verify", "--help"], ["policy", "hash", POLICIES],
            ["worker", "decide", "--help"])
EAGER = ("import importlib, sys\n"
         "from gatewatch.streams.cli.main import COMMAND_MODULES, main\n"
         "for m in COMMAND_MODULES: importlib.import_module(m)\n"
         "sys.exit(main(sys.argv[1:]))\n")
LAZY = "import sys\nfrom gatewatch.streams.cli.main import main\nsys.exit(main(sys.argv[1:]))\n"


def cpu_of(code: str, argv: list[str]) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", code, *argv], check=True, stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    print(f"{'command':<28} {'eager s':>8} {'lazy s':>8} {'lazy/eager':>10}")
    for argv in COMMANDS:
        cpu_of(LAZY, argv)  # warm the page cache and .pyc files for both
        cpu_of(EAGER, argv)
        eager, lazy = [], []
        for _ in range(args.rounds):
            eager.append(cpu_of(EAGER, argv))
            lazy.append(cpu_of(LAZY, argv))
        e, lz = statistics.median(eager), statistics.median(lazy)
        name = " ".join("configs/policies" if a == POLICIES else a for a in argv if a != "--help")
        print(f"{name:<28} {e:8.3f} {lz:8.3f} {lz / e:9.2f}x")


if __name__ == "__main__":
    main()
