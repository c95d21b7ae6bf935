"""One-line messages from pydantic errors, for config files and manifests alike.

An unknown key is usually a typo of a known one, and the typo also makes the real key look
"missing": so unknown keys are reported first, with the closest known key suggested.
"""
from __future__ import annotations

import difflib

from pydantic import BaseModel, ValidationError


def _known_fields(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names valid at the parent of ``loc`` (walking nested models and lists)."""
    current = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = current.model_fields.get(part)
        if field is None:
            return []
        ann = field.annotation
        args = getattr(ann, "__args__", None) or ()
        candidates = [ann, *args]
        current = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if current is None:
            return []
    return list(current.model_fields)


def one_line(exc: ValidationError, where: str, model: type[BaseModel]) -> str:
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    first = errors[0]
    loc = tuple(first["loc"])
    path = ".".join(str(p) for p in loc) or "(root)"
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
        close = difflib.get_close_matches(str(loc[-1]), _known_fields(model, loc), n=1)
        if close:
            msg += f" (did you mean '{close[0]}'?)"
    else:
        msg = first["msg"]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {path}: {msg}{more}"
