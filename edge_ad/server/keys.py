"""Typed keys of the parts injected into the aiohttp application."""
from aiohttp import web

from ..config import ServerConfig
from ..prometheus import Metrics
from ..pipeline.port import ServicePort

PORT = web.AppKey("service", ServicePort)  # the only way into the running service
METRICS = web.AppKey("metrics", Metrics)
FRAME_CACHE = web.AppKey("frame_cache", dict)  # (camera, overlay) -> (seq, jpeg)
CONFIG = web.AppKey("server_config", ServerConfig)
STREAMS = web.AppKey("stream_viewers", dict)
PUSH_LOCKS = web.AppKey("push_locks", dict)  # camera -> asyncio.Lock: one posted image in flight
UPLOADS = web.AppKey("uploads", object)  # admission.Admission of uploads (read, decode, inspect)
LOOP_WATCH = web.AppKey("loop_watch", dict)  # stalled_s, stalled_at: the event loop's last stall
DRAIN = web.AppKey("drain", dict)  # since: monotonic time of SIGTERM (None while serving); in_flight
PLATFORM = web.AppKey("platform", dict)  # edge_ad.platform.detect(), read once at start
