"""Many proofs from one tree: every level of perfect subtrees, kept in memory.

`merkle.inclusion_proof` rehashes O(n) per proof; an export proves every event it
writes, so it builds a `TreeIndex` once (about 2n hashes) and answers each proof
with O(log² n) lookups: the RFC 9162 PATH and SUBPROOF recursions only ever ask for
the root of a range that starts at a multiple of its largest power of two, which is
a stored node or a short fold of stored nodes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from lockgate.audit import merkle

__all__ = ["TreeIndex"]

_NODE = b"\x01"


class TreeIndex:
    def __init__(self, leaf_hashes: Sequence[bytes]) -> None:
        self.size = len(leaf_hashes)
        levels: list[list[bytes]] = [list(leaf_hashes)]
        sha = hashlib.sha256
        while len(levels[-1]) > 1:
            below = levels[-1]
            levels.append([sha(_NODE + below[i] + below[i + 1]).digest() for i in range(0, len(below) - 1, 2)])
        self._levels = levels

    def _range_root(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) for `start` aligned as the recursions produce it."""
        if end - start == 0:
            return merkle.EMPTY_ROOT
        parts: list[bytes] = []
        while start < end:
            width = end - start
            k = 1 << (width.bit_length() - 1)  # the largest power of two <= width
            while start % k:
                k >>= 1
            parts.append(self._levels[k.bit_length() - 1][start // k])
            start += k
        acc = parts[-1]
        for left in reversed(parts[:-1]):
            acc = hashlib.sha256(_NODE + left + acc).digest()
        return acc

    def root(self, size: int | None = None) -> bytes:
        return self._range_root(0, self.size if size is None else size)

    def inclusion(self, index: int, size: int) -> list[bytes]:
        if not 0 <= index < size <= self.size:
            raise ValueError(f"leaf {index} is not in a tree of {size} leaves")
        path: list[bytes] = []
        start, end = 0, size
        while end - start > 1:
            k = 1 << ((end - start - 1).bit_length() - 1)
            mid = start + k
            if index < mid:
                path.append(self._range_root(mid, end))
                end = mid
            else:
                path.append(self._range_root(start, mid))
                start = mid
        path.reverse()
        return path

    def consistency(self, old_size: int, new_size: int) -> list[bytes]:
        if not 0 <= old_size <= new_size <= self.size:
            raise ValueError(f"no consistency proof from {old_size} to {new_size} leaves")
        if old_size in (0, new_size):
            return []
        proof: list[bytes] = []
        start, end, m, whole = 0, new_size, old_size, True
        while m != end - start:
            k = 1 << ((end - start - 1).bit_length() - 1)
            mid = start + k
            if m <= k:
                proof.append(self._range_root(mid, end))
                end = mid
            else:
                proof.append(self._range_root(start, mid))
                start, m, whole = mid, m - k, False
        if not whole:
            proof.append(self._range_root(start, end))
        proof.reverse()
        return proof
