"""Proofs and exports, read from the store: inclusion of one event in a signed tree,
consistency between two checkpoints, and the JSONL export with a proof per event.

These read every body up to the tree size they prove against (hashing is done in a
worker thread so a gateway serving them keeps answering).
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from lockgate.audit import merkle
from lockgate.audit.checkpoint import rfc3339
from lockgate.audit.proofs import TreeIndex
from lockgate.errors import InvalidRequest, NotFound

if TYPE_CHECKING:
    from lockgate.store import Store

__all__ = ["checkpoint_out", "consistency", "export_lines", "inclusion"]


def checkpoint_out(row: dict[str, Any]) -> dict[str, Any]:
    when = row["time"]
    return {
        "tree_size": int(row["tree_size"]),
        "root_hash": row["root_hash"],
        "time": rfc3339(when) if isinstance(when, datetime) else str(when),
        "key_id": row["key_id"],
        "public_key": row["public_key"],
        "signature": row["signature"],
    }


async def _checkpoint(store: Store, tree_size: int | None) -> dict[str, Any]:
    checkpoints = await store.checkpoints()
    if not checkpoints:
        raise NotFound("No signed checkpoint yet: make one with `lockgate audit checkpoint` or POST /admin/audit/checkpoints.")
    if tree_size is None:
        return checkpoints[-1]
    for cp in checkpoints:
        if int(cp["tree_size"]) == tree_size:
            return cp
    raise NotFound(f"No signed checkpoint of tree size {tree_size}.")


async def _index(store: Store, size: int) -> TreeIndex:
    bodies = [body async for _, body in store.audit_bodies(1, size)]
    if len(bodies) != size:
        raise InvalidRequest(f"The ledger holds {len(bodies)} of the {size} events this tree covers; run `lockgate audit verify`.")
    return await asyncio.to_thread(lambda: TreeIndex([merkle.leaf_hash(b.encode()) for b in bodies]))


async def inclusion(store: Store, seq: int, tree_size: int | None = None) -> dict[str, Any]:
    """Proof that event `seq` is leaf `seq - 1` of a signed tree (the newest by default)."""
    cp = await _checkpoint(store, tree_size)
    size = int(cp["tree_size"])
    if not 1 <= seq <= size:
        raise NotFound(f"Event {seq} is not in the signed tree of size {size} (it may be newer: make a checkpoint).")
    found = await store.audit_event(seq)
    if found is None:
        raise NotFound(f"No audit event {seq}.")
    body, _ = found
    index = await _index(store, size)
    return {
        "seq": seq,
        "leaf_index": seq - 1,
        "leaf_hash": merkle.leaf_hash(body.encode()).hex(),
        "tree_size": size,
        "root_hash": cp["root_hash"],
        "proof": [p.hex() for p in index.inclusion(seq - 1, size)],
        "checkpoint": checkpoint_out(cp),
        "event": json.loads(body),
    }


async def consistency(store: Store, old_size: int, new_size: int) -> dict[str, Any]:
    """Proof that the signed tree of `new_size` extends the signed tree of `old_size`."""
    if old_size > new_size:
        raise InvalidRequest("The first tree size must not exceed the second.", param="from")
    old = await _checkpoint(store, old_size)
    new = await _checkpoint(store, new_size)
    index = await _index(store, new_size)
    return {
        "from": checkpoint_out(old),
        "to": checkpoint_out(new),
        "proof": [p.hex() for p in index.consistency(old_size, new_size)],
    }


async def export_lines(
    store: Store,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    with_payloads: bool = False,
) -> AsyncIterator[bytes]:
    """The JSONL export: a header line (the newest signed checkpoint, where the export
    starts, the chain before it), then one line per event with its chain hash, its
    inclusion proof (events the checkpoint covers) and, last, the event's exact body."""
    checkpoints = await store.checkpoints()
    cp = checkpoints[-1] if checkpoints else None
    size = int(cp["tree_size"]) if cp else 0
    index = await _index(store, size) if size else None
    first = 1
    if since is not None:
        found_first = await store.first_seq_since(since)
        first = found_first if found_first is not None else (await store.audit_tail())[0] + 1
    prev = "0" * 64
    if first > 1:
        found = await store.audit_event(first - 1)
        prev = found[1] if found else prev
    header = {
        "export": "lockgate-audit/v1",
        "first_seq": first,
        "prev_chain": prev,
        "checkpoint": checkpoint_out(cp) if cp else None,
    }
    yield json.dumps(header).encode() + b"\n"
    last, _ = await store.audit_tail()
    async for seq, body, chain in store.audit_rows(first, last):
        if until is not None and datetime.fromisoformat(json.loads(body)["time"]) >= until:
            break
        meta: dict[str, Any] = {"seq": seq, "chain": chain}
        if index is not None and seq <= size:
            meta["tree_size"] = size
            meta["proof"] = [p.hex() for p in index.inclusion(seq - 1, size)]
        if with_payloads:
            payload = await store.audit_payload(seq)
            if payload is not None:
                meta["payload"] = _payload_out(payload)
        yield json.dumps(meta, separators=(",", ":")).encode()[:-1] + b',"event":' + body.encode() + b"}\n"


def _payload_out(payload: dict[str, Any]) -> Any:
    if payload["scheme"] == "plain":
        return json.loads(bytes(payload["data"]))
    return {
        "scheme": payload["scheme"],
        "subject": payload["subject"],
        "nonce": base64.b64encode(bytes(payload["nonce"] or b"")).decode(),
        "data": base64.b64encode(bytes(payload["data"])).decode(),
    }
