"""The audit ledger's Merkle tree: RFC 9162 (Certificate Transparency v2) hashing and proofs.

The hashing is the one of RFC 6962, unchanged in RFC 9162 §2.1.1 with SHA-256:

    leaf_hash(d)   = SHA-256(0x00 || d)
    node_hash(l,r) = SHA-256(0x01 || l || r)
    MTH({})        = SHA-256("")                          (EMPTY_ROOT)
    MTH(D[n])      = node_hash(MTH(D[0:k]), MTH(D[k:n]))  k = largest power of 2 < n

so a ledger's tree head can be checked by any CT/transparency-log tool (Go's
`transparency-dev/merkle`, Trillian, sigsum, ...), and the tests pin the RFC 6962 test
vectors those projects share.

Why it is written by hand: we know of no maintained Python library that implements the
RFC 9162 inclusion and consistency proofs, and the algorithms are small, so the issue asked
for this module, tested against the RFC 6962 vectors. Everything here is pure `hashlib`.

Everything works on already hashed leaves (`leaf_hash(entry)`), and every function is
iterative and O(n) at worst (a proof hashes each interior node at most once):

- `root(leaf_hashes)`: MTH, level by level; an odd last node is carried up unchanged,
  which gives the same tree as the RFC's "largest power of two" split.
- `CompactTree`: append-only, keeps only the O(log n) roots of the perfect subtrees on the
  right edge (a "compact range"), so a ledger keeps its running root in memory.
- `inclusion_proof` / `verify_inclusion`: RFC 9162 §2.1.3.1 PATH and §2.1.3.2.
- `consistency_proof` / `verify_consistency`: §2.1.4.1 SUBPROOF and §2.1.4.2.

Proof generation raises `ValueError` on impossible arguments; verification never raises and
returns False for anything it cannot prove. Edge cases (the RFC only defines 0 < m < n):

- `consistency_proof(m, D[n])` is `[]` when m == 0 or m == n.
- `verify_consistency(m, n, ...)` with m == n holds iff the proof is empty and the roots are
  equal; with m == 0 it holds iff the proof is empty and `old_root` is `EMPTY_ROOT` (the
  root of the empty tree is defined, so we check it; any new tree extends the empty one,
  so `new_root` is only checked when n == 0 too). m > n or negative sizes never verify.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactTree",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root",
    "subtree_root",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256
_LEAF = b"\x00"
_NODE = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 leaf hash: SHA-256(0x00 || data)."""
    return _sha256(_LEAF + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 interior node hash: SHA-256(0x01 || left || right)."""
    return _sha256(_NODE + left + right).digest()


def _largest_power_of_two_below(n: int) -> int:
    """k with k < n <= 2k, for n >= 2 (the RFC's split point)."""
    return 1 << ((n - 1).bit_length() - 1)


def _reduce(level: list[bytes]) -> bytes:
    """MTH of a non-empty list of leaf hashes, bottom-up (the list is consumed)."""
    sha = _sha256
    node = _NODE
    while len(level) > 1:
        pairs = iter(level)
        upper = [
            sha(node + left + right).digest() for left, right in zip(pairs, pairs, strict=False)
        ]
        if len(level) & 1:
            upper.append(level[-1])
        level = upper
    return level[0]


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH over already hashed leaves (`EMPTY_ROOT` for none)."""
    if not leaf_hashes:
        return EMPTY_ROOT
    return _reduce(list(leaf_hashes))


def subtree_root(leaf_hashes: Sequence[bytes], start: int, end: int) -> bytes:
    """MTH(D[start:end]) (`EMPTY_ROOT` when start == end)."""
    if not 0 <= start <= end <= len(leaf_hashes):
        raise ValueError(f"bad subtree [{start}, {end}) of a tree of {len(leaf_hashes)} leaves")
    if start == end:
        return EMPTY_ROOT
    return _reduce(list(leaf_hashes[start:end]))


class CompactTree:
    """An append-only Merkle tree that keeps only its right edge.

    `nodes` are the roots of the perfect subtrees the leaves split into, largest (leftmost)
    first: one per set bit of `size`, so O(log n) hashes. Appending merges equal-sized
    subtrees like a binary counter; `root()` folds them right to left, which is exactly MTH.
    Persist `(size, nodes)` and rebuild with `from_state` to resume without the leaves.
    """

    __slots__ = ("_nodes", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._nodes: list[bytes] = []

    @classmethod
    def from_hashes(cls, leaf_hashes: Sequence[bytes]) -> CompactTree:
        """The compact tree of these leaf hashes (O(n), without per-leaf appends)."""
        tree = cls()
        start, n = 0, len(leaf_hashes)
        for bit in reversed(range(n.bit_length())):
            width = 1 << bit
            if n & width:
                tree._nodes.append(_reduce(list(leaf_hashes[start : start + width])))
                start += width
        tree._size = n
        return tree

    @classmethod
    def from_state(cls, size: int, nodes: Iterable[bytes]) -> CompactTree:
        """Resume from a persisted `(size, nodes)` pair."""
        tree = cls()
        tree._nodes = list(nodes)
        if size < 0 or len(tree._nodes) != size.bit_count():
            raise ValueError(f"a tree of {size} leaves has {max(size, 0).bit_count()} nodes")
        if any(len(node) != HASH_SIZE for node in tree._nodes):
            raise ValueError(f"compact tree nodes must be {HASH_SIZE}-byte hashes")
        tree._size = size
        return tree

    @property
    def size(self) -> int:
        return self._size

    @property
    def nodes(self) -> tuple[bytes, ...]:
        return tuple(self._nodes)

    def append(self, leaf_hash: bytes) -> None:
        """Add one already hashed leaf."""
        nodes = self._nodes
        nodes.append(leaf_hash)
        carry = self._size
        while carry & 1:
            right = nodes.pop()
            nodes[-1] = _sha256(_NODE + nodes[-1] + right).digest()
            carry >>= 1
        self._size += 1

    def root(self) -> bytes:
        """MTH of all leaves appended so far."""
        nodes = self._nodes
        if not nodes:
            return EMPTY_ROOT
        acc = nodes[-1]
        for left in reversed(nodes[:-1]):
            acc = _sha256(_NODE + left + acc).digest()
        return acc

    def __repr__(self) -> str:
        return f"CompactTree(size={self._size}, root={self.root().hex()})"


def inclusion_proof(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """RFC 9162 §2.1.3.1 PATH(index, D[n]): sibling subtree roots, leaf level first."""
    n = len(leaf_hashes)
    if not 0 <= index < n:
        raise ValueError(f"leaf index {index} is outside a tree of {n} leaves")
    path: list[bytes] = []  # collected root first, reversed at the end
    start, end = 0, n
    while end - start > 1:
        k = _largest_power_of_two_below(end - start)
        mid = start + k
        if index < mid:  # PATH(m, D[0:k]) : MTH(D[k:n])
            path.append(_reduce(list(leaf_hashes[mid:end])))
            end = mid
        else:  # PATH(m - k, D[k:n]) : MTH(D[0:k])
            path.append(_reduce(list(leaf_hashes[start:mid])))
            start = mid
    path.reverse()
    return path


def consistency_proof(old_size: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """RFC 9162 §2.1.4.1 PROOF(m, D[n]) = SUBPROOF(m, D[n], true); `[]` for m == 0 or m == n."""
    n = len(leaf_hashes)
    if not 0 <= old_size <= n:
        raise ValueError(f"old size {old_size} is outside a tree of {n} leaves")
    if old_size in (0, n):
        return []
    proof: list[bytes] = []  # collected root first, reversed at the end
    start, end, m, whole = 0, n, old_size, True
    while m != end - start:
        k = _largest_power_of_two_below(end - start)
        mid = start + k
        if m <= k:  # SUBPROOF(m, D[0:k], b) : MTH(D[k:n])
            proof.append(_reduce(list(leaf_hashes[mid:end])))
            end = mid
        else:  # SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])
            proof.append(_reduce(list(leaf_hashes[start:mid])))
            start, m, whole = mid, m - k, False
    if not whole:  # SUBPROOF(m, D[m], false) = {MTH(D[m])}
        proof.append(_reduce(list(leaf_hashes[start:end])))
    proof.reverse()
    return proof


def _all_hashes(*hashes: bytes) -> bool:
    return all(len(h) == HASH_SIZE for h in hashes)


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 §2.1.3.2: does `proof` show leaf `index` of the tree (`size`, `root`)?

    As in the RFC, the tree size is bound by the root, not by the proof: trust a size only
    together with its root (a signed checkpoint carries both).
    """
    if not 0 <= index < size or not _all_hashes(leaf_hash, root, *proof):
        return False
    fn, sn = index, size - 1
    r = leaf_hash
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = _sha256(_NODE + p + r).digest()
            while fn and not fn & 1:  # only when fn == sn with LSB(fn) unset
                fn >>= 1
                sn >>= 1
        else:
            r = _sha256(_NODE + r + p).digest()
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2: is the tree (`new_size`, `new_root`) an extension of the old one?"""
    if not 0 <= old_size <= new_size or not _all_hashes(old_root, new_root, *proof):
        return False
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT and (new_size > 0 or new_root == EMPTY_ROOT)
    if old_size == new_size:
        return not proof and old_root == new_root
    if not proof:
        return False
    path = list(proof)
    if (old_size & (old_size - 1)) == 0:  # an exact power of 2
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = _sha256(_NODE + c + fr).digest()
            sr = _sha256(_NODE + c + sr).digest()
            while fn and not fn & 1:  # only when fn == sn with LSB(fn) unset
                fn >>= 1
                sn >>= 1
        else:
            sr = _sha256(_NODE + sr + c).digest()
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0
