"""The bundle container: a deterministic .tar.gz read with bounded decompression, the strict
spellings every parsed file must have, and the signed manifest that binds every file.

Limits on reading (a bundle is untrusted input): compressed size, decompressed size, the
decompressed/compressed ratio, member count and per-member size are capped; decompression
stops as soon as a cap is passed, so a gzip bomb costs at most the cap in memory and time.
Measured figures are in docs/security.md.

manifest.sig is a C2SP signed note by the log key (under the log origin) over
    "gatewatch-evidence/1 manifest\\n<origin>\\n" + "<sha256 hex> <path>\\n" per file (sorted)
so every file of the bundle (manifest.json too) is bound by a signature the verifier pins, and
an altered file is named even when manifest.json was re-hashed to match it.
"""
from __future__ import annotations

import base64
import gzip
import hashlib
import io
import os
import tarfile
import zlib
from pathlib import Path

import orjson
from nacl.signing import SigningKey

from gatewatch.sinks.worm import checkpoint as cp
from gatewatch.streams.runtime.statefiles import write_bytes_atomic

FORMAT = "gatewatch-evidence/1"
ENTRY_FILES = ("entries.ndjson", "proofs.ndjson")
MANIFEST_SIG = "manifest.sig"
KEYS_JSON = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS  # how keys/public_keys.json is written

MAX_COMPRESSED = 256 << 20      # bytes of .tar.gz read at all
MAX_DECOMPRESSED = 512 << 20    # bytes of tar after gunzip
MAX_RATIO = 100                 # decompressed / compressed, beyond the first MiB
MAX_MEMBERS = 10_000
_CHUNK = 1 << 20


class BundleError(Exception):
    """Verification failure; str() names the first bad entry index or file."""


def _tar_add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    tar.addfile(info, io.BytesIO(data))


def write_bundle(files: dict[str, bytes], out: str) -> str:
    """Write a deterministic .tar.gz (fsynced, renamed into place, the directory fsynced); returns its sha256."""
    raw, buf = io.BytesIO(), io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            _tar_add(tar, name, files[name])
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
        gz.write(raw.getvalue())
    data = buf.getvalue()
    write_bytes_atomic(Path(out), data, shared=True)  # the rename made durable too (directory fsync)
    return hashlib.sha256(data).hexdigest()


def gunzip_bounded(data: bytes, where: str, max_out: int = MAX_DECOMPRESSED, max_ratio: int = MAX_RATIO) -> bytes:
    """gzip-decompress data, refusing (BundleError, one line) past max_out bytes or max_ratio:1."""
    d = zlib.decompressobj(wbits=31)
    out: list[bytes] = []
    total = pos = 0
    if not data:
        raise BundleError(f"file {where}: empty, not a .tar.gz bundle")

    def take(chunk: bytes, consumed: int) -> None:
        """consumed: compressed bytes read so far, so the ratio is judged as the output grows."""
        nonlocal total
        total += len(chunk)
        out.append(chunk)
        if total > max_out:
            raise BundleError(f"file {where}: decompresses to more than {max_out >> 20} MiB (refused)")
        if total > (1 << 20) and total > max_ratio * max(consumed, 1):
            raise BundleError(f"file {where}: compression ratio above {max_ratio}:1 (refused as a gzip bomb)")
    try:
        for pos in range(0, len(data), _CHUNK):
            buf = data[pos:pos + _CHUNK]
            n = len(buf)
            while buf and not d.eof:
                chunk = d.decompress(buf, _CHUNK)
                buf = d.unconsumed_tail
                take(chunk, pos + n - len(buf))
            if d.eof:
                break
        while not d.eof:  # output still pending inside zlib once all input is in
            chunk = d.decompress(b"", _CHUNK)
            if not chunk:
                raise BundleError(f"file {where}: truncated gzip stream")
            take(chunk, len(data))
    except zlib.error as e:
        raise BundleError(f"file {where}: not a readable .tar.gz bundle (gzip: {e})") from None
    if d.unused_data or pos + _CHUNK < len(data):
        raise BundleError(f"file {where}: data after the end of the gzip stream")
    return b"".join(out)


def read_bundle(path: str) -> tuple[dict[str, bytes], str]:
    try:
        size = os.path.getsize(path)
        if size > MAX_COMPRESSED:
            raise BundleError(f"file {path}: {size} bytes, more than {MAX_COMPRESSED >> 20} MiB (refused)")
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise BundleError(f"file {path}: cannot read ({e.strerror})") from None
    raw = gunzip_bounded(data, path)
    files: dict[str, bytes] = {}
    folded: set[str] = set()
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
            for n, m in enumerate(tar):
                if n >= MAX_MEMBERS:
                    raise BundleError(f"file {path}: more than {MAX_MEMBERS} members (refused)")
                if not m.isfile():  # the exporter writes regular files only: a link or a directory
                    kind = "symlink" if m.issym() else "hard link" if m.islnk() else "directory" if m.isdir() \
                        else "special file"  # unsigned, and extracting it could replace a verified file
                    raise BundleError(f"file {m.name}: a {kind} member, which no exporter writes (refused)")
                if m.name in files:
                    raise BundleError(f"file {m.name}: appears twice in the bundle")
                _check_member_name(m.name, folded)
                files[m.name] = tar.extractfile(m).read()
    except (tarfile.TarError, OSError, EOFError, ValueError) as e:
        raise BundleError(f"file {path}: not a readable .tar.gz bundle ({e})") from None
    return files, hashlib.sha256(data).hexdigest()


def check_member_names(names) -> None:
    """The exporter's side of _check_member_name: it never writes what verify refuses."""
    folded: set[str] = set()
    for name in sorted(names):
        try:
            _check_member_name(name, folded)
        except BundleError as e:
            raise BundleError(f"cannot export {e}: rename it") from None


def _check_member_name(name: str, folded: set[str]) -> None:
    """Only names as the exporter writes them: two spellings of one path ("./entries.ndjson",
    "a//b", "ENTRIES.NDJSON" on a case-insensitive disk) would be two signed files to verify and one
    file after `tar -x`, the later one replacing what was verified."""
    parts = name.split("/")
    if name.startswith("/") or "\\" in name or any(p in ("", ".", "..") for p in parts):
        raise BundleError(f"file {name}: not a path the exporter writes (refused)")
    if name.casefold() in folded:
        raise BundleError(f"file {name}: another member has the same name but for case (refused)")
    folded.add(name.casefold())


# ---------------------------------------------------------------- strict spellings

def load_json(files: dict, name: str, option: int | None = None):
    """The parsed file; with the exporter's orjson option, also refuses any other spelling of it."""
    try:
        doc = orjson.loads(files[name])
    except (KeyError, orjson.JSONDecodeError):
        raise BundleError(f"file {name}: missing or not JSON") from None
    if option is not None and orjson.dumps(doc, option=option) != files[name]:
        raise BundleError(f"file {name}: not as the exporter writes it (reformatted or edited)")
    return doc


def strict_hex(text) -> bytes:
    """Lowercase hex only, as the exporter writes it: another spelling of the same bytes is an edit."""
    raw = bytes.fromhex(text)
    if raw.hex() != text:
        raise ValueError("not canonical hex")
    return raw


def strict_b64(text) -> bytes:
    """Canonical base64 only: unused low bits set are another spelling of the same hash."""
    raw = base64.b64decode(text, validate=True)
    if base64.b64encode(raw).decode() != text:
        raise ValueError("not canonical base64")
    return raw


# ---------------------------------------------------------------- the signed manifest

def signed_body(origin: str, files: dict[str, bytes]) -> str:
    """The note body manifest.sig signs: format, origin, then "<sha256 hex> <path>" per file (sorted)."""
    lines = [f"{FORMAT} manifest", origin]
    for name in sorted(files):
        if name == MANIFEST_SIG:
            continue
        if not name.isprintable() or " " in name or not name:
            raise BundleError(f"file {name!r}: a bundle file name must be printable without spaces")
        lines.append(f"{hashlib.sha256(files[name]).hexdigest()} {name}")
    return "\n".join(lines) + "\n"


def sign_manifest(files: dict[str, bytes], origin: str, log_key: SigningKey) -> bytes:
    return cp.sign(signed_body(origin, files), origin, log_key).text().encode()


def check_manifest_signature(files: dict, log: cp.Verifier) -> dict[str, str]:
    """manifest.sig verified with the anchored log key; returns the signed {path: sha256 hex}.
    Every file of the bundle (but manifest.sig) must be listed there and nothing else."""
    try:
        note = cp.parse_note(files[MANIFEST_SIG].decode())
    except KeyError:
        raise BundleError(f"file {MANIFEST_SIG}: missing (every file must be bound by the log key's signature)") \
            from None
    except (cp.NoteError, UnicodeDecodeError) as e:
        raise BundleError(f"file {MANIFEST_SIG}: {e}") from None
    if note.text().encode() != files[MANIFEST_SIG]:
        raise BundleError(f"file {MANIFEST_SIG}: not as the exporter writes it (reformatted or edited)")
    if log.name not in cp.valid_signers(note, [log]):
        raise BundleError(f"file {MANIFEST_SIG}: the log key's signature does not verify")
    lines = note.body.split("\n")[:-1]
    if lines[:2] != [f"{FORMAT} manifest", log.name]:
        raise BundleError(f"file {MANIFEST_SIG}: not a {FORMAT} manifest for {log.name!r}")
    signed: dict[str, str] = {}
    for line in lines[2:]:
        digest, _, name = line.partition(" ")
        if len(digest) != 64 or not name or name in signed:
            raise BundleError(f"file {MANIFEST_SIG}: malformed line {line!r}")
        signed[name] = digest
    for name in sorted(set(signed) | set(files) - {MANIFEST_SIG}):
        if name not in files:
            raise BundleError(f"file {name}: listed in the signed manifest but missing")
        if name not in signed:
            raise BundleError(f"file {name}: not in the signed manifest (added)")
    return signed


def check_hashes(files: dict, signed: dict[str, str], names) -> None:
    for name in sorted(names):
        if hashlib.sha256(files[name]).hexdigest() != signed[name]:
            raise BundleError(f"file {name}: sha256 differs from the signed manifest (altered)")
