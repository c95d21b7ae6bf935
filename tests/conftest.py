"""Shared fixtures and the two tiers (tests/tiers.py).

The runtime tier's bundle and images are checked in (tests/fixtures/runtime, made by
make_fixtures.py there): no torch, no export/. The export tier trains one tiny real
efficientad model per session, on demo data export/ writes."""
from __future__ import annotations

import asyncio
import shutil
import socket
import threading
from pathlib import Path

import pytest

from tests import tiers

TESTS = Path(__file__).resolve().parent
# asking for any of these makes a test part of the export tier
EXPORT_FIXTURES = {"export_demo_root", "trained_run", "trained_bundle"}


def pytest_addoption(parser):
    parser.addoption("--runtime-tier", action="store_true",
                     help="run the runtime tier only: no test of export/, torch or development tools, "
                          "and importing those fails (tests/tiers.py)")


def _runtime_tier(config) -> bool:
    return config.getoption("runtime_tier")


def _tier_of(path: Path) -> str | None:
    """``export`` or ``devtools`` for a full-suite-only file, else None."""
    try:
        return tiers.FULL_SUITE_ONLY.get(Path(path).resolve().relative_to(TESTS).as_posix())
    except ValueError:  # not under tests/
        return None


def pytest_configure(config):
    if _runtime_tier(config):
        tiers.block_imports()


def pytest_ignore_collect(collection_path, config):
    """The runtime tier does not even import the full-suite-only files: they import torch,
    export/ or a development tool at their top."""
    if _runtime_tier(config) and _tier_of(collection_path):
        return True
    return None


@pytest.hookimpl(tryfirst=True)  # before -m reads the markers
def pytest_collection_modifyitems(config, items):
    for item in items:
        tier = _tier_of(item.path)
        if tier:
            item.add_marker(tier)
        if EXPORT_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker("export")
    if _runtime_tier(config):
        keep = [i for i in items if not (i.get_closest_marker("export") or i.get_closest_marker("devtools"))]
        if len(keep) < len(items):
            config.hook.pytest_deselected(items=[i for i in items if i not in keep])
            items[:] = keep


# -- the runtime tier: checked-in fixtures ------------------------------------------------------
@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory) -> Path:
    """The checked-in bundle (a colour detector, tests/fixtures/runtime/make_fixtures.py),
    copied: engines, variants and persisted thresholds are written into it, and the image's
    copy of the tests is read-only."""
    from tests.runtime_data import BUNDLE

    return Path(shutil.copytree(BUNDLE, tmp_path_factory.mktemp("runtime") / "bundle"))


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    """The demo test split of wood (8 good, 3 of each defect, with masks) and a video of the
    line, from the checked-in images."""
    from tests.runtime_data import demo_tree

    return demo_tree(tmp_path_factory.mktemp("demo"))


# -- the export tier: a model trained with torch ------------------------------------------------
@pytest.fixture(scope="session")
def export_demo_root(tmp_path_factory) -> Path:
    from export.demo_data import Counts, write_demo_data

    root = tmp_path_factory.mktemp("export-demo")
    write_demo_data(root, seed=3, counts=Counts(train=28, test_good=8, per_defect=3),
                    categories=("wood",), video_category="wood")
    return root


@pytest.fixture(scope="session")
def trained_run(export_demo_root, tmp_path_factory) -> Path:
    from export.train import train

    run = tmp_path_factory.mktemp("run")
    train("efficientad", export_demo_root / "wood", run, size=128, steps=60, seed=0)
    return run


@pytest.fixture(scope="session")
def trained_bundle(trained_run) -> Path:
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
