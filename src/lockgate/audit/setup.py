"""Building the ledger from the configuration (the gateway and the CLI share this)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url

from lockgate.audit.checkpoint import Signer, load_signer
from lockgate.audit.crypto import PayloadCipher, parse_master_key
from lockgate.audit.journal import journal_dir
from lockgate.audit.ledger import Ledger
from lockgate.config.loader import LoadedConfig
from lockgate.errors import ConfigError

if TYPE_CHECKING:
    from lockgate.store import Store

__all__ = ["journal_path", "key_file_path", "open_ledger", "signer_of"]


def key_file_path(loaded: LoadedConfig) -> Path | None:
    """Where the generated signing key lives: `signing_key_file`, relative to the SQLite
    database's directory, else to the config file's, else to the working directory.
    None for an in-memory database (an ephemeral key)."""
    config = loaded.config
    path = Path(config.audit.signing_key_file)
    url = make_url(config.gateway.database.replace("sqlite+aiosqlite", "sqlite"))
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database in ("", ":memory:"):
            return None
        if not path.is_absolute():
            path = Path(database).resolve().parent / path
    elif not path.is_absolute() and loaded.source not in ("<default>", "<memory>"):
        path = Path(loaded.source).resolve().parent / path
    return path


def signer_of(loaded: LoadedConfig) -> Signer:
    try:
        return load_signer(loaded.secret(loaded.config.audit.signing_key), key_file_path(loaded))
    except OSError as exc:
        raise ConfigError(f"audit.signing_key_file: cannot read or create the signing key: {exc.strerror}") from None


def journal_path(loaded: LoadedConfig) -> Path | None:
    """The ledger's journal directory: beside a SQLite database file; None otherwise."""
    url = make_url(loaded.config.gateway.database.replace("sqlite+aiosqlite", "sqlite"))
    database = url.database or ""
    if url.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        return None
    return journal_dir(str(Path(database).resolve()))


def open_ledger(loaded: LoadedConfig, store: Store, *, gateway: bool = False) -> Ledger:
    """The ledger; `gateway`: a serving gateway's (with a store process when configured),
    otherwise a CLI command's (stores in its own process)."""
    audit = loaded.config.audit
    cipher = None
    master = loaded.secret(audit.encryption_key)
    if master is not None:
        cipher = PayloadCipher(parse_master_key(master), store)
    url = loaded.config.gateway.database
    sa_url = make_url(url.replace("sqlite+aiosqlite", "sqlite"))
    in_memory = sa_url.get_backend_name() == "sqlite" and (sa_url.database or "") in ("", ":memory:")
    journal = journal_path(loaded) if audit.journal else None
    return Ledger(
        store, audit, signer=signer_of(loaded), cipher=cipher, writer_url=None if in_memory else url, journal=journal,
        store_process=gateway and audit.store_process,
    )
