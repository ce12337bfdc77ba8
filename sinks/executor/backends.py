"""Effect backends: signed webhook, command, dry-run. Each returns an Outcome and never raises.

Every backend gets the action record's canonical JSON bytes and an idempotency
key (the action id). The ledger guarantees a key is handed over again only for
an action that was in flight when the executor died (see ledger.py), and the
webhook's own retries; receivers must do the effect at most once per key.
"""
from __future__ import annotations

import hashlib
import os
import random
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Callable

from nacl.signing import SigningKey, VerifyKey

from gatewatch.processors import acks
from gatewatch.processors.canonical import canonical_json
from gatewatch.processors.names import valid_name, why_not
from gatewatch.processors.signing import key_id, sign_b64

SIGNATURE_HEADER = "X-Gatewatch-Signature"   # base64 Ed25519 over the exact body bytes
KEY_ID_HEADER = "X-Gatewatch-Key-Id"
IDEMPOTENCY_HEADER = "Idempotency-Key"
_RESPONSE_CAP = 1 << 20  # read at most 1 MiB of a response (its digest goes in the receipt)
MIN_ATTEMPT_S = 0.001    # a webhook attempt needs more time than this left, else it is not made


@dataclass(frozen=True)
class Outcome:
    status: str                 # success | failure | timeout
    attempts: int
    response_digest: str        # sha256 hex of the last response body (or of stdout)
    detail: str                 # e.g. "http 200", "http 404", "timeout", "exit 3"
    dry_run: bool = False
    # RESULT receipt fields on the recipient's signed acknowledgement (gatewatch.processors.acks)
    delivery: dict = field(default_factory=lambda: {"delivery": acks.NOT_REQUESTED})


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class DryRunBackend:
    """Runs nothing; remembers (and reports) what it would have done."""

    type = "dry-run"

    def __init__(self, name: str = "dry-run", keep: int = 10_000):
        self.name = name
        self.done: deque[dict] = deque(maxlen=keep)

    def describe(self) -> dict:
        return {"backend": self.name, "type": self.type}

    def execute(self, record: dict, body: bytes, idempotency_key: str) -> Outcome:
        would = {"would": record.get("action"), "scope": record.get("scope"), "kind": record.get("kind"),
                 "action_id": record.get("id"), "idempotency_key": idempotency_key}
        self.done.append(would)
        return Outcome("success", 1, _digest(canonical_json(would)), "dry-run", dry_run=True)


@dataclass
class WebhookBackend:
    """HTTP POST of the action JSON, signed by the executor key, retried with backoff up to a deadline.

    2xx = success; 4xx other than 408/429 = permanent failure (no retry); anything
    else (5xx, 408, 429, connection error, per-attempt timeout) is retried after
    an exponential backoff with full jitter (AWS "full jitter": uniform(0, min(max,
    base*2^n))), honouring a numeric Retry-After, until the deadline. Out of time:
    status "timeout" if the last attempt timed out, else "failure".
    """

    name: str
    url: str
    signing_key: SigningKey
    timeout_s: float = 2.0
    deadline_s: float = 30.0
    backoff_base_s: float = 0.1
    backoff_max_s: float = 5.0
    headers: dict = field(default_factory=dict)
    # recipient key id -> key: the signed acknowledgement the recipient must answer with (None = none asked)
    ack_keys: dict[str, VerifyKey] | None = None
    ack_required: bool = True  # an unconfirmed delivery is logged as a warning (always receipted and counted)
    rng: random.Random = field(default_factory=random.Random)  # jitter only: timing, never output
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    type = "webhook"

    def describe(self) -> dict:
        return {"backend": self.name, "type": self.type, "url": self.url}

    def execute(self, record: dict, body: bytes, idempotency_key: str) -> Outcome:
        headers = {"Content-Type": "application/json", **self.headers,
                   IDEMPOTENCY_HEADER: idempotency_key,
                   KEY_ID_HEADER: key_id(self.signing_key.verify_key),
                   SIGNATURE_HEADER: sign_b64(self.signing_key, body)}
        start = self.clock()
        attempt, last_body, detail = 0, b"", "deadline"
        while True:
            attempt += 1
            per_attempt = min(self.timeout_s, self.deadline_s - (self.clock() - start))
            if per_attempt <= MIN_ATTEMPT_S:  # no time left (a backoff sleep overshot): as below
                status = "failure" if attempt > 1 and detail != "timeout" else "timeout"
                return self._acked(Outcome(status, attempt - 1, _digest(last_body), detail), record, idempotency_key,
                                   last_body)
            code, last_body, retry_after, detail = self._post(body, headers, per_attempt)
            if code is not None and 200 <= code < 300:
                return self._acked(Outcome("success", attempt, _digest(last_body), detail), record,
                                   idempotency_key, last_body)
            if code is not None and 400 <= code < 500 and code not in (408, 429):
                return self._acked(Outcome("failure", attempt, _digest(last_body), detail), record,
                                   idempotency_key, last_body)
            delay = self.rng.uniform(0, min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1)))
            if retry_after is not None:
                delay = max(delay, retry_after)
            if self.clock() - start + delay >= self.deadline_s:
                status = "timeout" if detail == "timeout" else "failure"
                return self._acked(Outcome(status, attempt, _digest(last_body), detail), record, idempotency_key,
                                   last_body)
            self.sleep(delay)

    def _acked(self, outcome: Outcome, record: dict, idempotency_key: str, last_body: bytes) -> Outcome:
        """The outcome with the recipient's acknowledgement judged (last response body). An unconfirmed
        delivery never turns into a retry: the HTTP answer decides the status, the receipt says unconfirmed."""
        if self.ack_keys is None:
            return outcome
        delivery = acks.check_response(last_body, self.ack_keys, str(record.get("id")), idempotency_key,
                                       acks.outcome_of(outcome.status))
        return replace(outcome, delivery=delivery)

    def _post(self, body: bytes, headers: dict, timeout_s: float):
        """(status or None, response body, Retry-After seconds or None, detail)."""
        req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:
                return resp.status, resp.read(_RESPONSE_CAP), None, f"http {resp.status}"
        except urllib.error.HTTPError as e:
            data = e.read(_RESPONSE_CAP) if e.fp else b""
            return e.code, data, _retry_after(e.headers.get("Retry-After")), f"http {e.code}"
        except (TimeoutError, socket.timeout):
            return None, b"", None, "timeout"
        except urllib.error.URLError as e:
            if isinstance(e.reason, (TimeoutError, socket.timeout)):
                return None, b"", None, "timeout"
            return None, b"", None, f"error: {e.reason}"
        except (OSError, ValueError) as e:  # connection reset mid-response, bad URL, ...
            return None, b"", None, f"error: {type(e).__name__}: {e}"


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP-date: ignore, backoff applies


@dataclass
class CommandBackend:
    """Runs argv with the action on stdin (JSON) and in GATEWATCH_* environment variables.

    Exit code 0 = success; another code = failure; over the timeout the whole
    process group is killed and the status is "timeout". {scope}, {action},
    {action_id} and {kind} in argv are replaced (plain substitution, never a shell; the
    config refuses an argv that runs `sh -c` and the like). A value that is not a valid name
    (gatewatch.processors.names) is never substituted: the action fails with "refused: bad_name".
    The child's environment is explicit: ENV_ALLOW from ours (PATH, locale, TZ, HOME, TMPDIR),
    the variables the backend's `env:` list names, and the GATEWATCH_* action variables;
    nothing else (no SASL passwords, no keys).
    """

    name: str
    argv: list[str]
    timeout_s: float = 60.0
    env_allow: tuple[str, ...] = ()
    type = "command"

    def __post_init__(self):
        why = shell_in_argv(self.argv) if self.argv else "empty argv"
        if why:
            raise ValueError(f"command backend {self.name}: {why} (no shell: give the program and its arguments)")

    def describe(self) -> dict:
        return {"backend": self.name, "type": self.type, "argv": self.argv}

    def execute(self, record: dict, body: bytes, idempotency_key: str) -> Outcome:
        fields = {"scope": record.get("scope"), "action": record.get("action"),
                  "action_id": record.get("id"), "kind": record.get("kind")}
        used = {k: v for k, v in fields.items() if any("{" + k + "}" in a for a in self.argv)}
        bad = next((k for k, v in used.items() if not valid_name(v)), None)
        if bad is not None:
            return Outcome("failure", 0, _digest(b""), f"refused: bad_name ({bad}: {why_not(used[bad])})")
        argv = [_substitute(a, fields) for a in self.argv]
        env = {k: os.environ[k] for k in (*ENV_ALLOW, *self.env_allow) if k in os.environ}
        env.update({
               "GATEWATCH_ACTION_ID": str(record.get("id", "")), "GATEWATCH_ACTION": str(record.get("action", "")),
               "GATEWATCH_SCOPE": str(record.get("scope", "")), "GATEWATCH_KIND": str(record.get("kind", "")),
               "GATEWATCH_IDEMPOTENCY_KEY": idempotency_key})
        if len(body) <= MAX_ENV_JSON:  # the kernel refuses one string over 128 KiB: stdin always has it
            env["GATEWATCH_ACTION_JSON"] = body.decode()
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                    env=env, start_new_session=True)
        except OSError as e:
            return Outcome("failure", 1, _digest(b""), f"error: {e.strerror or e}")
        try:
            out, _ = proc.communicate(body, timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            out, _ = proc.communicate()
            return Outcome("timeout", 1, _digest(out or b""), "timeout")
        status = "success" if proc.returncode == 0 else "failure"
        return Outcome(status, 1, _digest(out or b""), f"exit {proc.returncode}")


ENV_ALLOW = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "HOME", "TMPDIR")
MAX_ENV_JSON = 64 * 1024
SHELLS = ("sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "fish", "csh", "tcsh", "busybox", "pwsh")


def shell_in_argv(argv: list[str]) -> str | None:
    """Why argv would run a shell command string (program is a shell or `env` + a shell, with -c),
    or None. Placeholders in the program itself are refused too."""
    if "{" in argv[0]:
        return "a placeholder in the program name"
    prog = os.path.basename(argv[0])
    if prog == "env":  # env's options (-i, -u NAME, -S "sh -c ...", --) and NAME=VALUE may come first:
        # any shell with a -c anywhere in its words is refused
        words = [w for a in argv[1:] for w in a.split()]
        shell = next((os.path.basename(w) for w in words if os.path.basename(w) in SHELLS), None)
        if shell and any(w.startswith("-") and "c" in w.lstrip("-").split("=")[0] for w in words):
            return f"env {shell} -c runs a shell command string"
        return None
    if prog in SHELLS and any(a.startswith("-") and "c" in a.lstrip("-") for a in argv[1:]):
        return f"{prog} -c runs a shell command string"
    return None


def _substitute(arg: str, fields: dict) -> str:
    for k, v in fields.items():
        arg = arg.replace("{" + k + "}", str(v))
    return arg


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
