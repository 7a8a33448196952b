"""TreeIndex answers exactly what the reference module (merkle.py) answers."""

from __future__ import annotations

import hashlib

from lockgate.audit import merkle
from lockgate.audit.proofs import TreeIndex


def _leaves(n: int) -> list[bytes]:
    return [merkle.leaf_hash(hashlib.sha256(str(i).encode()).digest()) for i in range(n)]


def test_matches_reference_for_every_size_index_and_pair() -> None:
    leaves = _leaves(70)
    index = TreeIndex(leaves)
    for n in range(1, 71):
        assert index.root(n) == merkle.root(leaves[:n])
        for i in range(n):
            proof = index.inclusion(i, n)
            assert proof == merkle.inclusion_proof(i, leaves[:n])
            assert merkle.verify_inclusion(leaves[i], i, n, proof, merkle.root(leaves[:n]))
        for m in range(0, n + 1):
            assert index.consistency(m, n) == merkle.consistency_proof(m, leaves[:n])


def test_larger_tree_spot_checks() -> None:
    leaves = _leaves(1000)
    index = TreeIndex(leaves)
    root = merkle.root(leaves)
    for i in (0, 1, 511, 512, 513, 999):
        assert merkle.verify_inclusion(leaves[i], i, 1000, index.inclusion(i, 1000), root)
    for m in (1, 7, 512, 999):
        assert merkle.verify_consistency(m, 1000, merkle.root(leaves[:m]), root, index.consistency(m, 1000))
