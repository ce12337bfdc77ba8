"""Issue 19, item 7: bounded parsers. YAML alias bombs, control characters, NUL, deep nesting and
oversized files in policy files, executor configs and bundled policies; gzip bombs, corrupt and
truncated streams in bundles: each refused with one line naming the file (never "internal error"),
next to a control the same code accepts. Memory is measured (tracemalloc), never wall time."""
from __future__ import annotations

import gzip
import io
import random
import tarfile
import tracemalloc
import zlib

import pytest

from gatewatch.processors.policy import PolicyError
from gatewatch.sinks.executor.config import load_config
from gatewatch.sinks.worm.bundle import BundleError, gunzip_bounded, read_bundle
from gatewatch.streams.cli.main import main
from gatewatch.streams.runtime.errors import GatewatchError
from gatewatch.streams.runtime.policy_files import compose
from tests.security import helpers

LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8))
DEEP = "k: " + "[" * 5000 + "]" * 5000 + "\n"
CONTROL = "# project\nslo:\n  availability:\n    target: 0.999\x07\n"
NUL = "# project\x00\n"
HUGE = "# " + "x" * (2 << 20) + "\n"


@pytest.mark.parametrize("text,want", [
    (LAUGHS, "project.yml:1: YAML anchors (&a) are not allowed"),
    ("a: 1\nb: *a\n", "project.yml:2: YAML aliases (*a) are not allowed"),
    ("a: &x 1\n", "project.yml:1: YAML anchors (&x) are not allowed"),
    (DEEP, "project.yml:1: nested deeper than 64 levels"),
    (CONTROL, "project.yml:4: control character U+0007 is not allowed"),
    (NUL, "project.yml:1: control character U+0000 is not allowed"),
    (HUGE, "project.yml: larger than 1024 KiB (refused)"),
    ("a: [1, 2\n", "project.yml:2: not valid YAML"),
])
def test_policy_bombs_are_refused_in_one_line(text, want):
    tracemalloc.start()
    try:
        with pytest.raises(PolicyError) as e:
            compose([("project.yml", text)])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    msg = str(e.value)
    assert msg.startswith(want) and "\n" not in msg, msg
    assert peak < 100 << 20  # the acceptance's 100 MB (HUGE itself is 2 MiB of text)


def test_policy_control_with_comments_and_nesting_composes():
    text = "# project: tabs\tin comments, CRLF line ends\r\nslo:\r\n  availability:\r\n    target: 0.999\r\n"
    assert compose([("project.yml", text)]).hash


@pytest.mark.parametrize("text,want", [
    (LAUGHS, "YAML anchors (&a) are not allowed"),
    (NUL, "control character U+0000"),
    (DEEP, "nested deeper than 64 levels"),
])
def test_executor_config_bombs_are_refused(tmp_path, text, want):
    p = tmp_path / "executor.yml"
    p.write_text(text)
    with pytest.raises(GatewatchError) as e:
        load_config(str(p))
    assert want in str(e.value) and str(e.value).startswith(str(p)) and "\n" not in str(e.value)
    p.write_text("executor:\n  concurrency: 4\n")
    assert load_config(str(p)).concurrency == 4


def test_alias_bomb_in_a_bundled_policy_is_refused(tmp_path, capsys):
    keys = helpers.keys(tmp_path / "keys")
    b = helpers.bundle(tmp_path, "bomb.tar.gz", keys,
                       patch=lambda files: files.update({"policies/project.yml": LAUGHS.encode()}))
    assert main(["verify", b, "--trusted-keys", keys]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("gatewatch: error: verify failed: file policies/:") and "anchors" in err, err
    assert "internal error" not in err


def _tar_gz(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue())


def test_gzip_bomb_bundle_is_refused_early(tmp_path, capsys):
    zeros = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = b"".join([zeros.compress(b"\0" * (1 << 20)) for _ in range(64)] + [zeros.flush()])  # 64 MiB of zeros
    p = tmp_path / "bomb.tar.gz"
    p.write_bytes(bomb)
    tracemalloc.start()
    try:
        with pytest.raises(BundleError, match=r"compression ratio above 100:1 \(refused as a gzip bomb\)"):
            read_bundle(str(p))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 << 20  # stops within the first few MiB
    assert main(["verify", str(p)]) == 1 and "gzip bomb" in capsys.readouterr().err


def test_decompressed_size_cap():
    data = gzip.compress(random.Random(0).randbytes(10_240_000))  # ~10 MB, incompressible
    assert len(gunzip_bounded(data, "x")) == 10_240_000
    with pytest.raises(BundleError, match="decompresses to more than 4 MiB"):
        gunzip_bounded(data, "x", max_out=4 << 20)


@pytest.mark.parametrize("mangle,want", [
    (lambda b: b[:10] + bytes([b[10] ^ 0xFF]) + b[11:], "not a readable .tar.gz bundle"),
    (lambda b: b[: len(b) // 2], "truncated gzip stream"),
    (lambda b: b + b"trailing", "data after the end of the gzip stream"),
    (lambda b: b"", "empty, not a .tar.gz bundle"),
    (lambda b: b"\x1f\x8b" + b"\x00" * 30, "not a readable .tar.gz bundle"),
])
def test_corrupt_gzip_gives_one_line(tmp_path, capsys, mangle, want):
    good = _tar_gz({"a.txt": bytes(range(256)) * 100})
    assert read_bundle(_write(tmp_path / "ok.tar.gz", good))[0]["a.txt"][:3] == b"\x00\x01\x02"  # control
    p = _write(tmp_path / "bad.tar.gz", mangle(good))
    assert main(["verify", p]) == 1
    err = capsys.readouterr().err.strip()
    assert want in err and "internal error" not in err and "\n" not in err, err


def _write(p, data):
    p.write_bytes(data)
    return str(p)
