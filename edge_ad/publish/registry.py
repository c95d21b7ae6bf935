"""The outputs of ``publish:`` in the config, by their ``type``: one line each. A new output is
one module with a ``DeliveringPublisher`` (or ``QueuedPublisher``) subclass taking
``(config, outbox, metrics, journal, readiness)``, a config model in config.py, and a line here."""
from __future__ import annotations

import importlib
import sqlite3
from pathlib import Path
from typing import Callable

from ..errors import ConfigError
from .outbox import Outbox

OUTPUTS = {  # config type -> "module:class"
    "webhook": "edge_ad.publish.webhook:WebhookPublisher",
    "mqtt": "edge_ad.publish.mqtt:MqttPublisher",
}


def build_outputs(configs, metrics, journal, readiness: Callable, default_dir: Path) -> list:
    """The publishers of ``publish:``, each with its outbox (named after the output)."""
    outputs, names = [], set()
    for config in configs:
        name = config.name or config.type
        n = 2
        while name in names:  # two webhooks: webhook, webhook-2
            name, n = f"{config.name or config.type}-{n}", n + 1
        names.add(name)
        config = config.model_copy(update={"name": name})
        path = config.outbox or default_dir / f"edge-ad-outbox-{name}.sqlite"
        module, _, cls = OUTPUTS[config.type].partition(":")
        publisher = getattr(importlib.import_module(module), cls)
        try:
            outbox = Outbox(path, config.outbox_max_rows, config.outbox_max_age_s)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"publish: {name}: cannot open its outbox {path}: {exc} "
                              "(set outbox: to a writable file)") from exc
        outputs.append(publisher(config, outbox, metrics, journal, readiness))
    return outputs
