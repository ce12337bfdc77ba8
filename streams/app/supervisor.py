"""Workers as real subprocesses (`python -m gatewatch ...`), wired upstream to downstream: the demo's,
the chaos tests' and the whole-stack fixture's way of running a pipeline on one machine.

Workers stop themselves when idle; one that goes idle while its upstream still runs (nothing to do
yet) is started again, so the pipeline drains stage after stage once the input ends.
"""
from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from gatewatch.streams.runtime.errors import GatewatchError


@dataclass
class Worker:
    name: str
    argv: list[str]
    upstream: tuple[str, ...]
    proc: subprocess.Popen | None = None
    starts: int = 0
    log: Path | None = None
    exited_at: int | None = None  # the tend() pass that first saw it exit


@dataclass
class Supervisor:
    env: dict
    logdir: Path
    workers: dict[str, Worker] = field(default_factory=dict)
    passes: int = 0

    def add(self, name: str, argv: list[str], upstream: tuple[str, ...] = ()) -> None:
        self.workers[name] = Worker(name, argv, upstream, log=self.logdir / f"{name}.log")

    def add_pipeline(self, out: Path, *, idle_s: float, executor_idle_s: float, sink_idle_s: float,
                     checkpoint_interval: float, worker_args: tuple = (), ingest_args: tuple = (),
                     instances: int = 1, assignment: str = "static") -> None:
        """The demo's workers, wired upstream to downstream: ingest, signals, decide, executor
        (config out/executor.yml), WORM sink, two witnesses; state and databases under `out`.
        With `instances` > 1 the pipeline stages run that many members each ("ingest-1", ...)
        in consumer groups, sharing the state directory so snapshots follow their partitions.
        The demo and the chaos tests differ only in these settings."""
        st = str(out / "state")
        stage = ["--state-dir", st, "--exit-when-idle", str(idle_s), *worker_args]
        if instances > 1 or assignment == "group":
            stage += ["--assignment", "group"]
        for name, extra, upstream in (("ingest", ingest_args, ()), ("signals", (), ("ingest",)),
                                      ("decide", (), ("signals",))):
            for i in range(instances):
                label = name if instances == 1 else f"{name}-{i + 1}"
                self.add(label, ["worker", name, *stage, *extra], upstream)
        self.add("executor", ["executor", "run", "--config", str(out / "executor.yml"), "--ledger",
                              str(out / "executor.db"), "--exit-when-idle", str(executor_idle_s)], ("decide",))
        self.add("worm", ["worm", "run", "--db", str(out / "worm.db"), "--exit-when-idle", str(sink_idle_s),
                          "--checkpoint-interval", str(checkpoint_interval)], ("decide", "executor"))
        for w in ("witness-1", "witness-2"):
            self.add(w, ["witness", "--name", w, "--state", str(out / f"{w}.json"),
                         "--exit-when-idle", str(sink_idle_s)], ("worm",))

    def start(self, name: str) -> None:
        w = self.workers[name]
        w.proc = subprocess.Popen([sys.executable, "-m", "gatewatch", *w.argv], env=self.env,
                                  stdout=subprocess.DEVNULL, stderr=open(w.log, "ab"), stdin=subprocess.DEVNULL)
        w.starts += 1
        w.exited_at = None

    def alive(self, name: str) -> bool:
        """Whether the worker `name` (or any member "name-N" of that stage) runs."""
        return any(w.proc is not None and w.proc.poll() is None for n, w in self.workers.items()
                   if n == name or (n.startswith(name + "-") and n[len(name) + 1:].isdigit()))

    def tend(self, publishing: bool) -> None:
        """Restart idle-exited workers whose input may still come; fail on crashes. An upstream
        that exited in the same pass as its downstream, or later, may have written after the
        downstream last looked: the downstream runs once more to read it."""
        self.passes += 1
        for w in self.workers.values():
            rc = w.proc.poll() if w.proc else None
            if rc is None:
                continue
            if rc != 0:
                tail = w.log.read_text(errors="replace")[-1500:] if w.log.exists() else ""
                raise GatewatchError(f"worker {w.name} exited with {rc}; log {w.log}:\n{tail}")
            if w.exited_at is None:
                w.exited_at = self.passes
        for w in self.workers.values():
            if self._needs_restart(w, publishing):
                self.start(w.name)

    def _exit_pass(self, w: Worker) -> int | None:
        if w.proc is None or w.proc.poll() is None:
            return None
        return w.exited_at if w.exited_at is not None else self.passes + 1  # exited, not yet seen

    def _needs_restart(self, w: Worker, publishing: bool) -> bool:
        mine = self._exit_pass(w)
        if mine is None or w.proc.returncode != 0:
            return False
        if publishing:
            return True
        members = [u for n, u in self.workers.items() for name in w.upstream
                   if n == name or (n.startswith(name + "-") and n[len(name) + 1:].isdigit())]
        return any(u.proc is not None and (self._exit_pass(u) is None or self._exit_pass(u) >= mine)
                   for u in members)

    def done(self) -> bool:
        return not any(self.alive(n) for n in self.workers) and \
            not any(self._needs_restart(w, False) for w in self.workers.values())

    def stop_all(self) -> None:
        for w in self.workers.values():
            if w.proc and w.proc.poll() is None:
                w.proc.terminate()
        for w in self.workers.values():
            if w.proc:
                try:
                    w.proc.wait(15)
                except subprocess.TimeoutExpired:
                    w.proc.kill()
