"""Checkpoints as C2SP signed notes, Ed25519 signatures, witness cosignatures, k-of-N policy.

Checkpoint body (C2SP tlog-checkpoint): three lines, each ending in "\\n":
    <origin>
    <tree size, decimal, no leading zeros>
    <root hash, standard base64>
Signed note (C2SP signed-note): body, one blank line, then one line per signature
    "\\u2014 <key name> <base64(key id (4 bytes) || Ed25519 signature (64 bytes))>"
over the body bytes. Key id = SHA-256(name || 0x0A || 0x01 || public key)[:4]. Verifier
keys are written the signed-note way: "<name>+<key id hex>+<base64(0x01 || public key)>".

Witnesses cosign by appending their own Ed25519 note signature line to the log's note
(the body never changes, so all signatures cover the same bytes). This is the original
witness scheme, not C2SP tlog-cosignature's timestamped "cosignature/v1" (alg 0x04).

Policy file, in the shape of C2SP tlog-policy (one directive per line, '#' comments):
    log <vkey>
    witness <name> <vkey>
    group <group name> <k> <member> ...
    quorum <group name>
A checkpoint counts when the log's signature verifies AND the quorum group is
satisfied (k of its members - witnesses or nested groups - signed validly).
Default (``default_policy``): the three witness-1..3 keys, group of 2, quorum that group.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass, field

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

ALG_ED25519 = 0x01
EM_DASH = "\u2014"
DEFAULT_ORIGIN = "gatewatch.local/worm"
WITNESS_ROLES = ("witness-1", "witness-2", "witness-3")
_NAME = re.compile(r"^[^\s+]+$")


class NoteError(ValueError):
    """A malformed checkpoint, note, key or policy."""


# ---------------------------------------------------------------- keys

def note_key_id(name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([ALG_ED25519]) + public_key).digest()[:4]


def vkey(name: str, verify_key: VerifyKey) -> str:
    pub = verify_key.encode()
    return f"{name}+{note_key_id(name, pub).hex()}+{base64.b64encode(bytes([ALG_ED25519]) + pub).decode()}"


@dataclass(frozen=True)
class Verifier:
    name: str
    key_id: bytes
    key: VerifyKey


def parse_vkey(text: str) -> Verifier:
    parts = text.strip().split("+", 2)  # base64 may itself contain "+"
    if len(parts) != 3 or not _NAME.match(parts[0]):
        raise NoteError(f"malformed verifier key {text!r}")
    name, kid_hex, b64 = parts
    try:
        raw = base64.b64decode(b64, validate=True)
        kid = bytes.fromhex(kid_hex)
    except (binascii.Error, ValueError):
        raise NoteError(f"malformed verifier key {text!r}") from None
    if len(kid) != 4 or len(raw) != 33 or raw[0] != ALG_ED25519:
        raise NoteError(f"unsupported verifier key {text!r} (want Ed25519)")
    if note_key_id(name, raw[1:]) != kid:
        raise NoteError(f"verifier key {text!r}: key id does not match the key")
    return Verifier(name, kid, VerifyKey(raw[1:]))


# ---------------------------------------------------------------- checkpoint body

@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def body(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"


def parse_checkpoint(body: str) -> Checkpoint:
    lines = body.split("\n")
    if len(lines) < 4 or lines[-1] != "" or any(line == "" for line in lines[:-1]):
        raise NoteError("checkpoint body must be origin, size and root lines, each ending in a newline")
    origin, size_s, root_s = lines[0], lines[1], lines[2]
    if not re.fullmatch(r"0|[1-9][0-9]{0,19}", size_s) or int(size_s) >= 1 << 64:
        raise NoteError(f"checkpoint size {size_s!r} is not a decimal uint64")
    try:
        root = base64.b64decode(root_s, validate=True)
    except binascii.Error:
        raise NoteError("checkpoint root is not base64") from None
    if len(root) != 32:
        raise NoteError(f"checkpoint root is {len(root)} bytes, want 32")
    return Checkpoint(origin, int(size_s), root)


# ---------------------------------------------------------------- signed notes

@dataclass
class Note:
    body: str
    signatures: list[tuple[str, bytes, bytes]] = field(default_factory=list)  # (name, key id, signature)

    def text(self) -> str:
        lines = [f"{EM_DASH} {n} {base64.b64encode(kid + sig).decode()}\n" for n, kid, sig in self.signatures]
        return self.body + "\n" + "".join(lines)


def parse_note(text: str) -> Note:
    if not isinstance(text, str) or "\n\n" not in text or not text.endswith("\n"):
        raise NoteError("not a signed note (no blank line after the body)")
    i = text.rindex("\n\n")  # signature lines never contain a blank line; the body may not end in one
    body, sig_block = text[: i + 1], text[i + 2:]
    sigs = []
    for line in sig_block[:-1].split("\n"):
        m = re.fullmatch(EM_DASH + r" (\S+) (\S+)", line)
        if not m or "+" in m.group(1):
            raise NoteError(f"malformed signature line {line!r}")
        try:
            raw = base64.b64decode(m.group(2), validate=True)
        except binascii.Error:
            raise NoteError(f"signature line {line!r} is not base64") from None
        if len(raw) < 5:
            raise NoteError(f"signature line {line!r} is too short")
        sigs.append((m.group(1), raw[:4], raw[4:]))
    if not sigs:
        raise NoteError("note has no signatures")
    return Note(body, sigs)


def sign(body: str, name: str, signing_key: SigningKey) -> Note:
    note = Note(body)
    return add_signature(note, name, signing_key)


def add_signature(note: Note, name: str, signing_key: SigningKey) -> Note:
    """Append name's signature over the body (replacing an earlier one by the same key)."""
    if not _NAME.match(name):
        raise NoteError(f"bad key name {name!r}")
    kid = note_key_id(name, signing_key.verify_key.encode())
    sig = signing_key.sign(note.body.encode()).signature
    others = [s for s in note.signatures if not (s[0] == name and s[1] == kid)]
    return Note(note.body, others + [(name, kid, sig)])


def valid_signers(note: Note, verifiers: list[Verifier]) -> set[str]:
    """Names of the given verifiers whose signature on the note verifies."""
    ok = set()
    msg = note.body.encode()
    for v in verifiers:
        for name, kid, sig in note.signatures:
            if name == v.name and kid == v.key_id:
                try:
                    v.key.verify(msg, sig)
                    ok.add(v.name)
                except (BadSignatureError, ValueError):
                    pass
    return ok


# ---------------------------------------------------------------- policy

@dataclass
class Policy:
    log: Verifier
    witnesses: dict[str, Verifier]
    groups: dict[str, tuple[int, tuple[str, ...]]]
    quorum: str

    def __post_init__(self) -> None:
        seen = {bytes(self.log.key.encode()): "the log"}
        for name, w in self.witnesses.items():  # one key under two names would meet a 2-of-N quorum alone
            other = seen.setdefault(bytes(w.key.encode()), f"witness {name}")
            if other != f"witness {name}":
                raise NoteError(f"policy witness {name}: the same key as {other}")

    def text(self) -> str:
        out = [f"log {vkey(self.log.name, self.log.key)}"]
        out += [f"witness {n} {vkey(v.name, v.key)}" for n, v in self.witnesses.items()]
        out += [f"group {g} {k} {' '.join(m)}" for g, (k, m) in self.groups.items()]
        out.append(f"quorum {self.quorum}")
        return "\n".join(out) + "\n"

    def _met(self, member: str, signed: set[str], depth: int = 0) -> bool:
        if member in self.witnesses:
            return self.witnesses[member].name in signed
        if depth > 16:
            return False
        k, members = self.groups[member]
        return sum(self._met(m, signed, depth + 1) for m in members) >= k

    def evaluate(self, note: Note) -> tuple[bool, bool, list[str]]:
        """(log signature valid, quorum met, names of witnesses that signed validly)."""
        log_ok = self.log.name in valid_signers(note, [self.log])
        signed = valid_signers(note, list(self.witnesses.values()))
        names = sorted(n for n, v in self.witnesses.items() if v.name in signed)
        return log_ok, self._met(self.quorum, signed), names

    def accepts(self, note: Note) -> bool:
        log_ok, quorum_ok, _ = self.evaluate(note)
        return log_ok and quorum_ok


def parse_policy(text: str) -> Policy:
    log, witnesses, groups, quorum = None, {}, {}, None
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        f = line.split()
        try:
            if f[0] == "log" and len(f) in (2, 3):
                log = parse_vkey(f[1])
            elif f[0] == "witness" and len(f) in (3, 4):
                witnesses[f[1]] = parse_vkey(f[2])
            elif f[0] == "group" and len(f) >= 4:
                members = tuple(f[3:])
                k = len(members) if f[2] == "all" else 1 if f[2] == "any" else int(f[2])
                groups[f[1]] = (k, members)
            elif f[0] == "quorum" and len(f) == 2:
                quorum = f[1]
            else:
                raise NoteError(f"policy line {n}: cannot parse {raw!r}")
        except ValueError as e:
            raise NoteError(f"policy line {n}: {e}") from None
    if log is None or quorum is None:
        raise NoteError("policy needs a 'log' and a 'quorum' line")
    for g, (k, members) in groups.items():
        unknown = [m for m in members if m not in witnesses and m not in groups]
        if unknown or not 1 <= k <= len(members):
            raise NoteError(f"policy group {g}: bad threshold or unknown members {unknown}")
        if len(set(members)) != len(members):  # else one witness's signature would count twice
            raise NoteError(f"policy group {g}: a member is listed twice")
    if quorum not in groups and quorum not in witnesses:
        raise NoteError(f"policy quorum {quorum!r} is not a witness or group")
    return Policy(log, witnesses, groups, quorum)


def make_policy(origin: str, log_key: VerifyKey, witness_keys: dict[str, VerifyKey], k: int = 2) -> Policy:
    ws = {name: Verifier(name, note_key_id(name, vk.encode()), vk) for name, vk in witness_keys.items()}
    return Policy(Verifier(origin, note_key_id(origin, log_key.encode()), log_key), ws,
                  {"witnesses": (k, tuple(ws))}, "witnesses")


def default_policy(origin: str = DEFAULT_ORIGIN, keys_path=None, k: int = 2) -> Policy:
    """The log key signs under the origin name; witness-1..3 under their role names."""
    from gatewatch.streams.runtime.errors import GatewatchError
    from gatewatch.streams.runtime.keys import load_verify_key
    try:
        return make_policy(origin, load_verify_key("log", keys_path),
                           {r: load_verify_key(r, keys_path) for r in WITNESS_ROLES}, k)
    except NoteError as e:  # e.g. a witness key copied over another's
        raise GatewatchError(f"keys {keys_path or 'directory'}: {e}") from None
