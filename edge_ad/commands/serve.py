"""``edge-ad serve``: the service on the embedded aiohttp server."""
from __future__ import annotations

import logging
import sys

from aiohttp import web

from ..config import build_config, load_config
from ..errors import ConfigError
from ..metrics import Metrics
from ..server.app import make_app
from ..service import build_pipeline

log = logging.getLogger("edge_ad.serve")


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


# The HTTP loop shares the interpreter with the capture and inference threads. At CPython's
# default 5 ms switch interval a request could wait that long for a thread doing Python work
# to yield; bench/http_bench.py measured GET /v1/result p99 at 5.5 ms that way.
SWITCH_INTERVAL_S = 0.0005


def run_serve(args) -> int:
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    config = resolve_config(args)
    metrics = Metrics()
    pipeline = build_pipeline(config, metrics)
    app = make_app(pipeline, metrics, config.security, config.server)
    if not config.security.token:
        log.info("control endpoints (PUT /v1/config/threshold) are disabled until a token is set: "
                 "export EDGE_AD_TOKEN=$(openssl rand -hex 24) before starting, or security.token in the config")
    host, port = config.server.host, config.server.port
    log.info("serving %s on http://%s:%d (dashboard /, API /v1/result, metrics /metrics)",
             config.model, host, port)
    try:
        web.run_app(app, host=host, port=port, print=None, access_log=None,
                    handle_signals=True, shutdown_timeout=2.0)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc} "
                          "(is another edge-ad running? use --port)") from exc
    return 0
