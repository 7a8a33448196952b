"""`lockgate serve`: uvicorn (uvloop + httptools) around `create_app`."""

from __future__ import annotations

import logging

import uvicorn

from lockgate.app import create_app
from lockgate.config.loader import LoadedConfig
from lockgate.monitor.logs import configure_logging

__all__ = ["run"]


def run(loaded: LoadedConfig, env: dict[str, str]) -> None:
    obs = loaded.config.observability
    configure_logging(obs.log_level, obs.log_format)
    log = logging.getLogger("lockgate")
    for missing in loaded.missing_secrets:
        log.warning("secret not set", extra={"detail": missing})
    app = create_app(loaded, env=env)
    gw = loaded.config.gateway
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=gw.host,
            port=gw.port,
            loop="uvloop",
            http="httptools",
            lifespan="on",
            access_log=False,
            log_level="warning",
            server_header=False,
            timeout_keep_alive=75,
        )
    )
    log.info("starting", extra={"host": gw.host, "port": gw.port, "config": loaded.source})
    server.run()
