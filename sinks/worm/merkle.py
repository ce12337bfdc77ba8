"""Merkle tree hashing, proofs and verification exactly as RFC 9162 §2.1 (RFC 6962 tree).

Leaf hash = SHA-256(0x00 || entry bytes); node hash = SHA-256(0x01 || left || right);
the empty tree's root is SHA-256(""). Leaves passed to root/inclusion_proof/
consistency_proof are raw entry bytes; every hash is a 32-byte ``bytes``.

The verifiers mirror transparency-dev/merkle's proof package (VerifyInclusion,
VerifyConsistency): they compute the expected proof length from index/sizes and
reject anything else, reject consistency from size 0, and additionally reject
any hash that is not 32 bytes (the Go code compares bytes, so it accepts a
garbage-but-equal root for size1 == size2; we do not — see tests/worm/vectors/README.md).

Three ways to get proofs:
- the module-level functions over a list of leaves (simple, O(n) each);
- ``Levels`` over leaf hashes: O(n) once, then O(log n) per proof (evidence export);
- any ``range_hash(a, b)`` callable, e.g. the store's, which reads persisted
  perfect-subtree nodes so proofs for a large log need O(log n) lookups, not memory.
``CompactRange`` is the live log's right edge: O(log n) amortised per append, root
without a rebuild, and it reports every perfect subtree it completes so the store
can persist it.
"""
from __future__ import annotations

import hashlib
from typing import Callable, Iterable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

RangeHash = Callable[[int, int], bytes]  # MTH(D[a:b]) for a node of the tree


def hash_leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def hash_children(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """Largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


# ---------------------------------------------------------------- proof paths over any range hasher

def inclusion_path(index: int, size: int, range_hash: RangeHash) -> list[bytes]:
    """RFC 9162 PATH(index, D[0:size]), leaf-to-root order."""
    if not 0 <= index < size:
        raise ValueError(f"index {index} out of range for size {size}")
    path: list[bytes] = []
    lo, hi, m = 0, size, index
    while hi - lo > 1:
        k = _split(hi - lo)
        if m < k:
            path.append(range_hash(lo + k, hi))
            hi = lo + k
        else:
            path.append(range_hash(lo, lo + k))
            lo, m = lo + k, m - k
    path.reverse()
    return path


def consistency_path(old_size: int, size: int, range_hash: RangeHash) -> list[bytes]:
    """RFC 9162 PROOF(old_size, D[0:size]); empty when old_size == size."""
    if not 0 < old_size <= size:
        raise ValueError(f"consistency proof needs 0 < old_size <= size, got {old_size}, {size}")
    out: list[bytes] = []
    lo, hi, m, whole = 0, size, old_size, True
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            out.append(range_hash(lo + k, hi))
            hi = lo + k
        else:
            out.append(range_hash(lo, lo + k))
            lo, m, whole = lo + k, m - k, False
    if not whole:
        out.append(range_hash(lo, hi))
    out.reverse()
    return out


# ---------------------------------------------------------------- in-memory tree

class Levels:
    """All node levels of the tree over leaf hashes; an odd last node is carried up unchanged.

    With that carry rule, node (level L, index j) is MTH(D[j*2^L : min((j+1)*2^L, n)]),
    which covers every node of the RFC 6962 tree (each starts at a multiple of 2^L
    where 2^(L-1) < its width <= 2^L).
    """

    def __init__(self, leaf_hashes: Sequence[bytes]):
        level = list(leaf_hashes)
        self.size = len(level)
        self.levels = [level]
        while len(level) > 1:
            nxt = [hash_children(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            if len(level) % 2:
                nxt.append(level[-1])
            self.levels.append(nxt)
            level = nxt

    def range_hash(self, a: int, b: int) -> bytes:
        lvl = (b - a - 1).bit_length()
        return self.levels[lvl][a >> lvl]

    def root(self) -> bytes:
        return self.levels[-1][0] if self.size else EMPTY_ROOT

    def inclusion_proof(self, index: int) -> list[bytes]:
        return inclusion_path(index, self.size, self.range_hash)

    def consistency_proof(self, old_size: int) -> list[bytes]:
        return consistency_path(old_size, self.size, self.range_hash)


def root(leaves: Iterable[bytes]) -> bytes:
    cr = CompactRange()
    for leaf in leaves:
        cr.append(hash_leaf(leaf))
    return cr.root()


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    return Levels([hash_leaf(x) for x in leaves]).inclusion_proof(index)


def consistency_proof(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    return Levels([hash_leaf(x) for x in leaves]).consistency_proof(old_size)


# ---------------------------------------------------------------- incremental right edge

class CompactRange:
    """Perfect-subtree hashes along the right edge of [0, size), largest first.

    ``on_node(level, index, hash)`` is called for each perfect subtree of level >= 1
    completed by an append (about one per append), so callers can persist them.
    """

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = (),
                 on_node: Callable[[int, int, bytes], None] | None = None):
        if len(hashes) != bin(size).count("1"):
            raise ValueError(f"compact range of size {size} needs {bin(size).count('1')} hashes, got {len(hashes)}")
        self.size = size
        self.hashes = list(hashes)
        self.on_node = on_node

    def append(self, leaf_hash: bytes) -> None:
        h, idx, level = leaf_hash, self.size, 0
        while idx & 1:  # the new node completes a pair at this level: merge with the left sibling
            h = hash_children(self.hashes.pop(), h)
            idx >>= 1
            level += 1
            if self.on_node:
                self.on_node(level, idx, h)
        self.hashes.append(h)
        self.size += 1

    def root(self) -> bytes:
        if not self.hashes:
            return EMPTY_ROOT
        h = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            h = hash_children(left, h)
        return h

    @staticmethod
    def perfect_ranges(size: int) -> list[tuple[int, int]]:
        """(level, index) of the perfect subtrees a compact range of this size holds, largest first."""
        out, start = [], 0
        for level in range(size.bit_length() - 1, -1, -1):
            if size >> level & 1:
                out.append((level, start >> level))
                start += 1 << level
        return out


def range_hash_from_perfect(perfect: Callable[[int, int], bytes]) -> RangeHash:
    """A RangeHash from a lookup of perfect-subtree nodes (level, index): right-border
    ranges are folded from their perfect parts, O(log n) lookups."""
    def rh(a: int, b: int) -> bytes:
        width = b - a
        if width & (width - 1) == 0:
            lvl = width.bit_length() - 1
            return perfect(lvl, a >> lvl)
        parts, start = [], a
        for lvl in range(width.bit_length() - 1, -1, -1):
            if width >> lvl & 1:
                parts.append(perfect(lvl, start >> lvl))
                start += 1 << lvl
        h = parts[-1]
        for left in reversed(parts[:-1]):
            h = hash_children(left, h)
        return h
    return rh


# ---------------------------------------------------------------- verification (strict)

def _is_hash(h) -> bool:
    return isinstance(h, (bytes, bytearray)) and len(h) == HASH_SIZE


def _inner_proof_size(index: int, size: int) -> int:
    return (index ^ (size - 1)).bit_length()


def _chain_inner(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    for i, h in enumerate(proof):
        seed = hash_children(seed, h) if (index >> i) & 1 == 0 else hash_children(h, seed)
    return seed


def _chain_inner_right(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    for i, h in enumerate(proof):
        if (index >> i) & 1:
            seed = hash_children(h, seed)
    return seed


def _chain_border_right(seed: bytes, proof: Sequence[bytes]) -> bytes:
    for h in proof:
        seed = hash_children(h, seed)
    return seed


def _sizes_ok(*sizes) -> bool:
    return all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 1 << 64 for s in sizes)


def verify_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    if not _sizes_ok(index, size) or index >= size:
        return False
    if not (_is_hash(leaf_hash) and _is_hash(root) and all(_is_hash(h) for h in proof)):
        return False
    inner = _inner_proof_size(index, size)
    border = bin(index >> inner).count("1")
    if len(proof) != inner + border:
        return False
    res = _chain_inner(bytes(leaf_hash), proof[:inner], index)
    res = _chain_border_right(res, proof[inner:])
    return res == bytes(root)


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes,
                       proof: Sequence[bytes]) -> bool:
    if not _sizes_ok(old_size, new_size) or new_size < old_size or old_size == 0:
        return False
    if not (_is_hash(old_root) and _is_hash(new_root) and all(_is_hash(h) for h in proof)):
        return False
    if old_size == new_size:
        return len(proof) == 0 and bytes(old_root) == bytes(new_root)
    if not proof:
        return False
    inner = _inner_proof_size(old_size - 1, new_size)
    border = bin((old_size - 1) >> inner).count("1")
    shift = (old_size & -old_size).bit_length() - 1  # trailing zeros
    inner -= shift
    # The first proof node is the rightmost perfect subtree of the old tree, unless the
    # old tree is itself perfect: then its root is that node and it is not in the proof.
    if old_size == 1 << shift:
        seed, start = bytes(old_root), 0
    else:
        seed, start = proof[0], 1
    if len(proof) != start + inner + border:
        return False
    rest = proof[start:]
    mask = (old_size - 1) >> shift
    h1 = _chain_border_right(_chain_inner_right(seed, rest[:inner], mask), rest[inner:])
    if h1 != bytes(old_root):
        return False
    h2 = _chain_border_right(_chain_inner(seed, rest[:inner], mask), rest[inner:])
    return h2 == bytes(new_root)
