"""Issue 19, item 5: every file of a bundle is bound by the log key's signature, and entries and
proofs are canonical bytes: another spelling of the same meaning is refused."""
from __future__ import annotations

import gzip
import hashlib
import io
import tarfile

import orjson
import pytest

from gatewatch.streams.cli.main import main
from tests.security import helpers


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bind")
    keys = helpers.keys(tmp / "keys")
    report = tmp / "report.html"
    report.write_text("<html><body>rollback at 10:02</body></html>\n")
    return tmp, keys, str(report)


def _verify(capsys, bundle, keys):
    code = main(["verify", bundle, "--trusted-keys", keys])
    return code, capsys.readouterr().err.strip()


def _variant(env, name, patch):
    """The genuine bundle's files, edited by patch, written without re-signing."""
    from gatewatch.sinks.worm.bundle import read_bundle, write_bundle
    tmp, keys, report = env
    files, _ = read_bundle(helpers.bundle(tmp, "g-" + name, keys, includes=(report,)))
    patch(files)
    out = str(tmp / name)
    write_bundle(files, out)
    return out


def _rehash_manifest_only(files):
    m = orjson.loads(files["manifest.json"])
    m["files"] = {k: hashlib.sha256(v).hexdigest() for k, v in sorted(files.items())
                  if k not in ("manifest.json", "manifest.sig")}
    files["manifest.json"] = orjson.dumps(m, option=orjson.OPT_INDENT_2)


def test_control_bundle_with_an_include_verifies(env, capsys):
    tmp, keys, report = env
    b = helpers.bundle(tmp, "ok.tar.gz", keys, includes=(report,))
    assert _verify(capsys, b, keys) == (0, "")


def _alter_report(files):
    files["include/report.html"] = files["include/report.html"].replace(b"rollback", b"no action")


@pytest.mark.parametrize("rehash", [False, True])
def test_altered_include_is_named(env, capsys, rehash):
    def patch(files):
        _alter_report(files)
        if rehash:  # manifest.json re-hashed to match: its signature still covers the old bytes
            _rehash_manifest_only(files)
    code, err = _verify(capsys, _variant(env, f"report-{rehash}.tar.gz", patch), env[1])
    assert code == 1
    assert err == ("gatewatch: error: verify failed: file include/report.html: "
                   "sha256 differs from the signed manifest (altered)")


@pytest.mark.parametrize("op,want", [
    ("add", "file include/extra.txt: not in the signed manifest (added)"),
    ("remove", "file include/report.html: listed in the signed manifest but missing"),
    ("nosig", "file manifest.sig: missing (every file must be bound by the log key's signature)"),
    ("badsig", "file manifest.sig: the log key's signature does not verify"),
    ("manifest", "file manifest.json: sha256 differs from the signed manifest (altered)"),
])
def test_file_set_and_signature_edits_are_named(env, capsys, op, want):
    def patch(files):
        if op == "add":
            files["include/extra.txt"] = b"x"
        elif op == "remove":
            del files["include/report.html"]
        elif op == "nosig":
            del files["manifest.sig"]
        elif op == "badsig":
            s = bytearray(files["manifest.sig"])
            s[-10] = ord("A") if s[-10] != ord("A") else ord("B")
            files["manifest.sig"] = bytes(s)
        elif op == "manifest":
            files["manifest.json"] = files["manifest.json"].replace(b'"format"', b'"format" ', 1)
    code, err = _verify(capsys, _variant(env, f"set-{op}.tar.gz", patch), env[1])
    assert code == 1 and err == f"gatewatch: error: verify failed: {want}", err


def _reserialize(kind):
    def patch(files):
        name = "entries.ndjson" if kind.startswith("entry") else "proofs.ndjson"
        lines = files[name].split(b"\n")
        doc = orjson.loads(lines[0])
        if kind == "entry-spaces":
            lines[0] = lines[0].replace(b'","', b'", "', 1)
        elif kind == "entry-key-order":
            lines[0] = orjson.dumps(dict(reversed(list(doc.items()))))
        elif kind == "entry-unicode-escape":
            lines[0] = lines[0].replace(b'"rollback"', b'"\\u0072ollback"', 1)
        elif kind == "entry-value-order":
            doc["value"] = dict(reversed(list(doc["value"].items())))
            lines[0] = orjson.dumps(doc)
        elif kind == "proof-spaces":
            lines[0] = lines[0].replace(b'","', b'", "', 1)
        elif kind == "proof-upper-hex":
            lines[0] = orjson.dumps(dict(doc, leaf_hash=doc["leaf_hash"].upper()))
        assert lines[0] != files[name].split(b"\n")[0] and orjson.loads(lines[0]) == orjson.loads(lines[0])
        files[name] = b"\n".join(lines)
    return patch


@pytest.mark.parametrize("kind,want", [
    ("entry-spaces", "entry 0: entry line is not canonical"),
    ("entry-key-order", "entry 0: entry line is not canonical"),
    ("entry-unicode-escape", "entry 0: entry line is not canonical"),
    ("entry-value-order", "entry 0: entry line is not canonical"),
    ("proof-spaces", "entry 0: proof line is not canonical"),
    ("proof-upper-hex", "entry 0: malformed line"),
])
def test_non_canonical_entry_or_proof_is_refused_even_when_re_signed(env, capsys, kind, want):
    """Same meaning, other bytes, with the manifest re-hashed and re-signed by the log key's holder."""
    b = helpers.bundle(env[0], f"canon-{kind}.tar.gz", env[1], includes=(env[2],), patch=_reserialize(kind))
    code, err = _verify(capsys, b, env[1])
    assert code == 1 and err.startswith(f"gatewatch: error: verify failed: {want}"), err


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.DIRTYPE])
def test_a_link_or_directory_member_is_refused(env, capsys, kind):
    """The exporter writes regular files only. A symlink member named like a signed file was skipped
    unsigned, and `tar -x` then replaced that verified file with whatever the link points at."""
    tmp, keys, report = env
    genuine = helpers.bundle(tmp, f"gen-{kind!r}.tar.gz", keys, includes=(report,))
    with tarfile.open(genuine, "r:gz") as t:
        members = [(m, t.extractfile(m).read()) for m in t.getmembers()]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for m, data in members:
            t.addfile(m, io.BytesIO(data))
        extra = tarfile.TarInfo("include/report.html")
        extra.type, extra.linkname = kind, "/etc/passwd"
        t.addfile(extra)
    bad = tmp / f"link-{kind!r}.tar.gz"
    bad.write_bytes(gzip.compress(buf.getvalue(), mtime=0))
    code, err = _verify(capsys, str(bad), keys)
    assert code == 1 and "include/report.html" in err and "(refused)" in err, err


@pytest.mark.parametrize("alias, want", [("./entries.ndjson", "not a path the exporter writes"),
                                         ("ENTRIES.NDJSON", "same name but for case"),
                                         ("include//report.html", "not a path the exporter writes"),
                                         ("include/../entries.ndjson", "not a path the exporter writes"),
                                         ("/entries.ndjson", "not a path the exporter writes")])
def test_another_spelling_of_a_signed_path_is_refused_even_when_signed(env, capsys, alias, want):
    """A log key holder signs a second member that `tar -x` writes over a verified file (one spelling
    of the path verified, the other's bytes on disk): only names as the exporter writes them pass."""
    tmp, keys, report = env

    def alias_entries(files):
        files[alias] = files["entries.ndjson"].split(b"\n", 1)[0] + b"\n"

    b = helpers.bundle(tmp, f"alias-{abs(hash(alias))}.tar.gz", keys, includes=(report,), patch=alias_entries)
    code, err = _verify(capsys, b, keys)
    assert code == 1 and want in err and "(refused)" in err, err  # names whichever of the two comes second
