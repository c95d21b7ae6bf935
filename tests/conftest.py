"""Shared fixtures: small demo data and one tiny real model, trained once per test session."""
from __future__ import annotations

import socket
import threading
import asyncio
from pathlib import Path

import pytest

from export.demo_data import Counts, write_demo_data


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    write_demo_data(root, seed=3, counts=Counts(train=28, test_good=8, per_defect=3),
                    categories=("wood",), video_category="wood")
    return root


@pytest.fixture(scope="session")
def trained_run(demo_root, tmp_path_factory) -> Path:
    from export.train import train

    run = tmp_path_factory.mktemp("run")
    train("efficientad", demo_root / "wood", run, size=128, steps=60, seed=0)
    return run


@pytest.fixture(scope="session")
def bundle_dir(trained_run) -> Path:
    return trained_run / "bundle"


class LiveServer:
    """A real aiohttp server on a loopback port, run on its own event loop thread."""

    def __init__(self, app):
        from edge_ad.server.slow_clients import guarded_runner

        self.loop = asyncio.new_event_loop()
        self.runner = guarded_runner(app)  # the runner edge-ad serve uses
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)

    async def _start(self):
        from aiohttp import web

        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self):
        if not self.thread.is_alive():  # closed already (a test may stop it to restart)
            return
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def live_server():
    servers = []

    def start(app) -> LiveServer:
        server = LiveServer(app)
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.close()
