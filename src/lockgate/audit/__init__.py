"""The audit ledger: typed events, hash-chained and Merkle-tree'd, signed checkpoints,
offline verification, export and search. See docs/audit.md."""
