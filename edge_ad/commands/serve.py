"""``edge-ad serve``: the service on the embedded aiohttp server.

Start: a model that cannot be loaded (corrupt, missing, an engine that fails) leaves the process
alive and not ready, saying why (server/degraded.py), and loading is retried every
``MODEL_RETRY_S``; a configuration error still exits at once with one line.
Stop (SIGTERM or SIGINT): /readyz answers 503 at once, requests in flight get up to ``DRAIN_S``
to finish, then the listener closes and the pipeline stops (the journal gives back its unused
reserved numbers)."""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from pathlib import Path

from aiohttp import web

from ..config import build_config, load_config
from ..errors import BundleError, ConfigError
from ..prometheus import Metrics
from ..server.app import make_app
from ..server.degraded import REASON, make_degraded_app
from ..server.keys import DRAIN
from ..server.slow_clients import guarded_runner
from ..assembly import build_service
from ..soak_leak import start_if_asked as start_soak_leak_if_asked

log = logging.getLogger("edge_ad.serve")
MODEL_RETRY_S = 30.0
DRAIN_S = 5.0  # at most, for requests in flight
DRAIN_MIN_S = 1.0  # at least: load balancers and probes see the 503 before the port closes


def resolve_config(args):
    if args.config:
        if args.model or args.source or args.journal or args.evidence:
            raise ConfigError("use either --config or --model/--source/--journal/--evidence, not both")
        config = load_config(args.config)
    else:
        if not (args.model and args.source):
            raise ConfigError("serve needs --config FILE, or both --model BUNDLE and --source URI")
        raw = {"model": args.model, "cameras": [{"source": args.source}]}
        if args.journal:
            raw["results"] = {"journal": args.journal}
        if args.evidence:
            raw["evidence"] = {"path": args.evidence}
        config = build_config(raw, "command line")
    server = config.server.model_copy(update={k: v for k, v in
                                              (("port", args.port), ("host", args.host)) if v})
    return config.model_copy(update={"server": server})




async def _listen(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = guarded_runner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, shutdown_timeout=DRAIN_S).start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc} "
                          "(is another edge-ad running? use --port)") from exc
    return runner


async def _serve(config, metrics: Metrics) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    host, port = config.server.host, config.server.port

    service, degraded = None, None
    while service is None:
        try:
            service = await loop.run_in_executor(None, build_service, config, metrics)
        except BundleError as exc:  # the model, not the config: alive, not ready, retrying
            metrics.model_load_failures.inc()
            log.error("model not loaded: %s; serving not-ready and retrying in %.0f s", exc, MODEL_RETRY_S)
            if degraded is None:
                degraded = await _listen(make_degraded_app(metrics, str(exc), MODEL_RETRY_S), host, port)
            else:
                degraded.app[REASON]["text"] = str(exc)
            try:
                await asyncio.wait_for(stop.wait(), MODEL_RETRY_S)
                await degraded.cleanup()
                return 0
            except asyncio.TimeoutError:
                continue
    if degraded is not None:
        await degraded.cleanup()
    app = make_app(service, metrics, config.security, config.server)
    if config.plc.opcua is not None or config.plc.modbus is not None:
        from ..plc.servers import PlcServers

        journal = config.results.journal
        state_dir = journal.parent if journal is not None else \
            Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local/state") / "edge-ad"
        app.cleanup_ctx.append(PlcServers(service, config.plc, metrics, state_dir).context)
    if not config.security.token:
        log.info("control endpoints (PUT /v1/config/threshold) are disabled until a token is set: "
                 "export EDGE_AD_TOKEN=$(openssl rand -hex 24) before starting, or security.token in the config")
    runner = await _listen(app, host, port)
    log.info("serving %s on http://%s:%d (dashboard /, API /v1/result, metrics /metrics)",
             config.model or f"recipes {sorted(config.recipes.items)}", host, port)
    await stop.wait()
    app[DRAIN]["since"] = time.monotonic()  # /readyz answers 503 from now on
    log.info("stopping: draining requests in flight (at most %.0f s)", DRAIN_S)
    t0 = time.monotonic()
    while time.monotonic() - t0 < DRAIN_S and (app[DRAIN]["in_flight"] > 0 or time.monotonic() - t0 < DRAIN_MIN_S):
        await asyncio.sleep(0.05)
    await runner.cleanup()  # closes the listener, then stops the pipeline (cleanup_ctx)
    return 0


def run_serve(args) -> int:
    config = resolve_config(args)
    metrics = Metrics()
    log.info("request headers must arrive within %.0f s (server.header_timeout_s)", config.server.header_timeout_s)
    start_soak_leak_if_asked()
    return asyncio.run(_serve(config, metrics))
