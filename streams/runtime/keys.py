"""Key files: one Ed25519 key per role, seed in <role>.key (0600), public key in <role>.pub.

The directory is GATEWATCH_KEYS_DIR or .gatewatch/keys. Key ids are derived
from the public key (gatewatch.processors.signing.key_id).
"""
from __future__ import annotations

import os
from pathlib import Path

from nacl.signing import SigningKey, VerifyKey

from gatewatch.processors.signing import key_id
from gatewatch.streams.runtime.errors import GatewatchError

ROLES = ("decider", "executor", "log", "witness-1", "witness-2", "witness-3")


def keys_dir(path: str | os.PathLike | None = None) -> Path:
    return Path(path or os.environ.get("GATEWATCH_KEYS_DIR") or ".gatewatch/keys")


def init_keys(path=None, roles=ROLES, force: bool = False) -> dict[str, str]:
    """Create missing keys (all of them with force). Returns {role: key_id}."""
    d = keys_dir(path)
    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o700)
    out = {}
    for role in roles:
        kf, pf = d / f"{role}.key", d / f"{role}.pub"
        if kf.exists() and not force:
            out[role] = key_id(load_signing_key(role, d).verify_key)
            continue
        sk = SigningKey.generate()
        fd = os.open(kf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(sk.encode().hex() + "\n")
        os.chmod(kf, 0o600)
        pf.write_text(sk.verify_key.encode().hex() + "\n")
        out[role] = key_id(sk.verify_key)
    return out


def load_signing_key(role: str, path=None) -> SigningKey:
    kf = keys_dir(path) / f"{role}.key"
    try:
        return SigningKey(bytes.fromhex(kf.read_text().strip()))
    except FileNotFoundError:
        raise GatewatchError(f"no key for role {role!r} at {kf} (run: gatewatch keys init)") from None
    except ValueError:
        raise GatewatchError(f"key file {kf} is not a hex Ed25519 seed") from None


def load_verify_key(role: str, path=None) -> VerifyKey:
    pf = keys_dir(path) / f"{role}.pub"
    try:
        return VerifyKey(bytes.fromhex(pf.read_text().strip()))
    except FileNotFoundError:
        raise GatewatchError(f"no public key for role {role!r} at {pf} (run: gatewatch keys init)") from None


def public_keys(path=None) -> dict[str, dict]:
    """{role: {"key_id", "public_key"}} for every role with a .pub file."""
    d = keys_dir(path)
    out = {}
    for pf in sorted(d.glob("*.pub")):
        vk = VerifyKey(bytes.fromhex(pf.read_text().strip()))
        out[pf.stem] = {"key_id": key_id(vk), "public_key": vk.encode().hex()}
    return out
