"""Key files: one Ed25519 key per role, seed in <role>.key (0600), public key in <role>.pub (0644).

The directory is GATEWATCH_KEYS_DIR or .gatewatch/keys. Key ids are derived
from the public key (gatewatch.processors.signing.key_id).

Files are handled as ssh handles its keys: a private key file must be a regular file (not a
symlink) readable by its owner only (no group/other bits), else loading refuses with one line
naming the file and the chmod to run. (Kubernetes Secret volumes present files as symlinks with
mode 0644 by default: mount keys with subPath and defaultMode 0400.) Keys are written atomically (a temporary file created
with O_EXCL|O_NOFOLLOW and the final mode, fsynced, renamed over the target, the directory
fsynced), so the mode does not depend on the umask and `keys init --force` never follows a
symlink planted at a key path. The key directory is 0700.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from nacl.signing import SigningKey, VerifyKey

from gatewatch.processors.signing import key_id
from gatewatch.streams.runtime.errors import GatewatchError

ROLES = ("decider", "executor", "log", "witness-1", "witness-2", "witness-3")
PRIVATE_MODE, PUBLIC_MODE = 0o600, 0o644
_MAX_KEY_FILE = 4096


def keys_dir(path: str | os.PathLike | None = None) -> Path:
    return Path(path or os.environ.get("GATEWATCH_KEYS_DIR") or ".gatewatch/keys")


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    """data to path with exactly `mode`, whatever the umask; never through a symlink."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)  # the umask may have removed bits from `mode`
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.replace(tmp, path)  # a symlink at `path` is replaced, never followed
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def init_keys(path=None, roles=ROLES, force: bool = False) -> dict[str, str]:
    """Create missing keys (all of them with force). Returns {role: key_id}."""
    d = keys_dir(path)
    if d.is_symlink():
        raise GatewatchError(f"key directory {d} is a symlink: refusing to write keys through it")
    if d.exists() and not d.is_dir():
        raise GatewatchError(f"key directory {d} is a file, not a directory")
    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o700)
    out = {}
    for role in roles:
        kf, pf = d / f"{role}.key", d / f"{role}.pub"
        if (kf.exists() or kf.is_symlink()) and not force:
            out[role] = key_id(load_signing_key(role, d).verify_key)
            continue
        sk = SigningKey.generate()
        _write_atomic(kf, (sk.encode().hex() + "\n").encode(), PRIVATE_MODE)
        _write_atomic(pf, (sk.verify_key.encode().hex() + "\n").encode(), PUBLIC_MODE)
        out[role] = key_id(sk.verify_key)
    return out


def _read_key_file(f: Path, private: bool) -> str:
    """The file's text; refuses non-regular files and, for a private key, a symlink or any
    group/other permission bit (public keys may be symlinks: they are not secret)."""
    try:
        fd = os.open(f, os.O_RDONLY | (os.O_NOFOLLOW if private else 0))
    except FileNotFoundError:
        raise
    except OSError as e:
        try:
            link = f.is_symlink()
        except OSError:  # its directory is closed to us too: say so, as for the file
            link = False
        if link:
            raise GatewatchError(f"key file {f} is a symlink: refusing it (replace it with the file itself)") from None
        raise GatewatchError(f"key file {f}: cannot open ({e.strerror})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise GatewatchError(f"key file {f} is not a regular file")
        if private and st.st_mode & 0o077:
            raise GatewatchError(f"private key {f} is accessible by others (mode {stat.S_IMODE(st.st_mode):04o}): "
                                 f"run chmod 600 {f}")
        data = os.read(fd, _MAX_KEY_FILE + 1)
    finally:
        os.close(fd)
    if len(data) > _MAX_KEY_FILE:
        raise GatewatchError(f"key file {f} is larger than {_MAX_KEY_FILE} bytes: not a key")
    try:
        return data.decode("ascii").strip()
    except UnicodeDecodeError:
        raise GatewatchError(f"key file {f} is not hex text") from None


def _key_bytes(f: Path, text: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise GatewatchError(f"key file {f} is not a hex Ed25519 key (64 hex digits)")
    return raw


def load_signing_key(role: str, path=None) -> SigningKey:
    kf = keys_dir(path) / f"{role}.key"
    try:
        text = _read_key_file(kf, private=True)
    except FileNotFoundError:
        raise GatewatchError(f"no key for role {role!r} at {kf} (run: gatewatch keys init)") from None
    return SigningKey(_key_bytes(kf, text))


def load_verify_key(role: str, path=None) -> VerifyKey:
    pf = keys_dir(path) / f"{role}.pub"
    try:
        text = _read_key_file(pf, private=False)
    except FileNotFoundError:
        raise GatewatchError(f"no public key for role {role!r} at {pf} (run: gatewatch keys init)") from None
    return VerifyKey(_key_bytes(pf, text))


def public_keys(path=None) -> dict[str, dict]:
    """{role: {"key_id", "public_key"}} for every role with a .pub file."""
    d = keys_dir(path)
    if not d.is_dir():  # a typo must not read as "no keys"
        raise GatewatchError(f"key directory {d}: no such directory")
    out = {}
    for pf in sorted(d.glob("*.pub")):
        vk = load_verify_key(pf.stem, d)
        out[pf.stem] = {"key_id": key_id(vk), "public_key": vk.encode().hex()}
    return out
