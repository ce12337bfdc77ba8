"""Issue 19, item 10: private keys 0600 and never through a symlink; written keys 0600 / .pub 0644
whatever the umask; `keys init --force` does not follow a planted symlink."""
from __future__ import annotations

import os
import stat

import pytest

from gatewatch.streams.cli.main import main
from gatewatch.streams.runtime.errors import GatewatchError
from gatewatch.streams.runtime.keys import init_keys, load_signing_key, load_verify_key, public_keys


def _mode(p) -> int:
    return stat.S_IMODE(os.lstat(p).st_mode)


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077])
def test_written_modes_do_not_depend_on_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        init_keys(tmp_path / "k", roles=("decider",))
    finally:
        os.umask(old)
    assert _mode(tmp_path / "k" / "decider.key") == 0o600
    assert _mode(tmp_path / "k" / "decider.pub") == 0o644
    assert _mode(tmp_path / "k") == 0o700
    assert load_signing_key("decider", tmp_path / "k")  # control: loads


@pytest.mark.parametrize("mode", [0o644, 0o666, 0o640, 0o604, 0o660])
def test_loose_private_key_is_refused_naming_the_chmod(tmp_path, mode):
    d = tmp_path / "k"
    init_keys(d, roles=("log",))
    os.chmod(d / "log.key", mode)
    with pytest.raises(GatewatchError) as e:
        load_signing_key("log", d)
    assert str(e.value) == (f"private key {d / 'log.key'} is accessible by others (mode {mode:04o}): "
                            f"run chmod 600 {d / 'log.key'}")
    os.chmod(d / "log.key", 0o400)  # control: owner-only read is fine
    assert load_signing_key("log", d)


def test_symlinked_private_key_is_refused(tmp_path):
    d = tmp_path / "k"
    init_keys(d, roles=("executor",))
    real = tmp_path / "elsewhere.key"
    os.replace(d / "executor.key", real)
    os.symlink(real, d / "executor.key")
    with pytest.raises(GatewatchError, match=r"executor.key is a symlink: refusing it"):
        load_signing_key("executor", d)


def test_force_does_not_follow_a_planted_symlink(tmp_path):
    d = tmp_path / "k"
    init_keys(d, roles=("decider",))
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    os.unlink(d / "decider.key")
    os.symlink(victim, d / "decider.key")
    init_keys(d, roles=("decider",), force=True)
    assert victim.read_text() == "precious\n"
    assert not os.path.islink(d / "decider.key") and _mode(d / "decider.key") == 0o600


def test_symlinked_key_directory_is_refused_for_writing(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    os.symlink(real, tmp_path / "k")
    with pytest.raises(GatewatchError, match="is a symlink"):
        init_keys(tmp_path / "k")


@pytest.mark.parametrize("content", ["zz\n", "00" * 31 + "\n", "\x00" * 10, "a" * 5000])
def test_garbage_key_files_are_one_line_errors(tmp_path, capsys, content):
    d = tmp_path / "k"
    init_keys(d, roles=("decider", "log"))
    (d / "decider.pub").write_text(content)
    with pytest.raises(GatewatchError):
        load_verify_key("decider", d)
    with pytest.raises(GatewatchError):
        public_keys(d)
    assert main(["keys", "show", "--dir", str(d)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error" not in err and "decider.pub" in err


def test_a_missing_or_wrong_key_directory_is_said_so(tmp_path, capsys):
    """`keys show` on a typo printed {} (read as "no keys"); `keys init` on a file crashed."""
    assert main(["keys", "show", "--dir", str(tmp_path / "no-such-dir")]) == 1
    assert "no such directory" in capsys.readouterr().err
    (tmp_path / "afile").write_text("x")
    assert main(["keys", "init", "--dir", str(tmp_path / "afile")]) == 1
    err = capsys.readouterr().err
    assert "is a file, not a directory" in err and "internal" not in err
    with pytest.raises(GatewatchError):
        public_keys(tmp_path / "no-such-dir")
