"""Control endpoints (bearer token required, see auth.py)."""
from __future__ import annotations

import asyncio
import logging
import math

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..bundle import Manifest, Normalization, Thresholds
from ..config import RECIPE_MAX
from ..model_root import BundleRefused
from ..pipeline.port import UnknownRecipe
from .auth import ROLE
from .bodies import parse
from .keys import PORT

log = logging.getLogger(__name__)


def _exactly_one_schema(schema: dict) -> None:
    # what the validator below enforces, said in the schema so clients (and schemathesis) know:
    # exactly one of the two keys, each a number, never null
    props = schema["properties"]
    props["threshold"] = {"type": "number", "minimum": -1e6, "maximum": 1e6, "description": "new raw image-score threshold"}
    props["normalized"] = {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1,
                           "description": "current normalized score to move the threshold to"}
    schema["oneOf"] = [{"required": ["threshold"]}, {"required": ["normalized"]}]


class ThresholdUpdate(BaseModel):
    """Exactly one of ``threshold`` (raw image score) or ``normalized`` (the current normalized
    score that should become the new 0.5, e.g. 0.6 to accept parts scoring up to 0.6 today)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_exactly_one_schema)
    # strict: JSON false is not 0.0, and "0.6" is not 0.6
    threshold: float | None = Field(None, ge=-1e6, le=1e6, strict=True, description="new raw image-score threshold")
    normalized: float | None = Field(None, gt=0, lt=1, strict=True,
                                     description="current normalized score to move the threshold to")
    persist: bool = Field(True, strict=True, description="write the change into the bundle's manifest")

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data):
        if isinstance(data, dict) and any(data.get(k, 0) is None for k in ("threshold", "normalized", "persist")):
            raise ValueError("threshold, normalized and persist take a value, not null; leave a key out instead")
        return data

    @model_validator(mode="after")
    def _exactly_one(self):
        if (self.threshold is None) == (self.normalized is None):
            raise ValueError("give exactly one of 'threshold' or 'normalized'")
        if self.threshold is not None and not math.isfinite(self.threshold):
            raise ValueError("threshold must be a finite number")
        return self


def shifted(thresholds: Thresholds, update: ThresholdUpdate) -> Thresholds:
    """New thresholds; the pixel threshold moves by the same amount in normalized units, and the
    scales stay, so scores keep their meaning around the new 0.5."""
    img, pix = thresholds.image, thresholds.pixel
    raw = update.threshold if update.threshold is not None else \
        img.threshold + (update.normalized - 0.5) * 2 * img.scale
    delta_norm = (raw - img.threshold) / img.scale
    return Thresholds(image=Normalization(threshold=raw, scale=img.scale),
                      pixel=Normalization(threshold=pix.threshold + delta_norm * pix.scale, scale=pix.scale))


def rethresholded(update: ThresholdUpdate):
    """The change a threshold update makes to a manifest; the worker applies it to the model it
    serves, so a reload can never slip in between reading the manifest and saving it."""
    def change(before: Manifest) -> Manifest:
        return before.model_copy(update={
            "thresholds": shifted(before.thresholds, update),
            # The rest of the calibration record still describes the data the threshold came from.
            "calibration": before.calibration.model_copy(update={"method": "manual"})})
    return change


async def put_threshold(request: web.Request) -> web.Response:
    update = await parse(request, ThresholdUpdate, '{"normalized": 0.6}')
    who = f"{request.get(ROLE) or 'anonymous'} from {request.remote}"
    job = request.app[PORT].change_thresholds(rethresholded(update), update.persist, who)
    try:
        done = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(job)), 30)
    except asyncio.TimeoutError:
        withdrawn = job.cancel()  # the worker skips a cancelled job; one it already runs completes
        return web.json_response({"error": "the inference worker did not take the change within 30 s; "
                                  + ("it was withdrawn, nothing changed" if withdrawn else
                                     "it is being applied now: read GET /v1/status")}, status=503)
    except OSError as exc:  # the manifest could not be saved: nothing changed
        return web.json_response({"error": f"threshold not changed: the manifest could not be saved: {exc}"},
                                 status=507)
    return web.json_response({"threshold": done.after.thresholds.image.threshold,
                              "previous": done.before.thresholds.image.threshold,
                              "scale": done.after.thresholds.image.scale, "persisted": done.persisted})


class ReloadRequest(BaseModel):
    """The body of POST /v1/model/reload."""
    model_config = ConfigDict(extra="forbid")
    path: str | None = Field(None, description="bundle directory; the one being served when omitted")


async def reload_model(request: web.Request) -> web.Response:
    service = request.app[PORT]
    req = await parse(request, ReloadRequest, '{"path": "/models/v2"}', optional=True)
    before = dict(service.served().info)
    log.warning("model reload of %s asked by %s from %s", req.path or "the served bundle",
                request.get(ROLE) or "anonymous", request.remote)
    try:
        job = service.reload(req.path)
    except ValueError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    try:
        loaded = await asyncio.wait_for(asyncio.wrap_future(job), 300)
    except Exception as exc:  # rolled back: the old engine never stopped serving
        status = 404 if isinstance(exc, BundleRefused) else 422  # no such bundle / it cannot serve
        return web.json_response({"error": f"reload failed, still serving the previous model: {exc}",
                                  "serving": service.served().info}, status=status)
    return web.json_response({"loaded": loaded, "previous": before})


class RecipeSelection(BaseModel):
    """The body of PUT /v1/recipe."""
    model_config = ConfigDict(extra="forbid")
    camera: str = Field(min_length=1, max_length=64, description="the camera whose product changes")
    recipe: int = Field(ge=0, le=RECIPE_MAX, description="the recipe number from recipes:")

    @field_validator("recipe", mode="before")
    @classmethod
    def _a_number(cls, v):
        # JSON's 2.0 is the integer 2; "2", true and 2.5 are not recipe numbers
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError("recipe is an integer, for example 2")
        return v


async def get_recipe(request: web.Request) -> web.Response:
    recipes = request.app[PORT].recipes()
    if recipes is None:
        return web.json_response({"error": "no recipes are configured (recipes: in the config)"}, status=404)
    return web.json_response(recipes)


async def put_recipe(request: web.Request) -> web.Response:
    """Select a recipe for a camera. It needs the control token: a recipe changes the model."""
    service = request.app[PORT]
    req = await parse(request, RecipeSelection, '{"camera": "cam0", "recipe": 2}')
    log.warning("recipe %d on camera %s asked by %s from %s", req.recipe, req.camera,
                request.get(ROLE) or "anonymous", request.remote)
    if service.recipes() is None:
        return web.json_response({"error": "no recipes are configured (recipes: in the config)"}, status=409)
    if req.camera not in service.cameras():
        return web.json_response({"error": f"no camera {req.camera!r}; the cameras are "
                                           f"{list(service.cameras())}"}, status=404)
    job = service.select_recipe(req.camera, req.recipe)
    try:
        done = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(job)), 300)
    except UnknownRecipe as exc:
        return web.json_response({"error": f"{exc}; camera {req.camera} answers FAULT (UNKNOWN_RECIPE) "
                                           "until a known recipe is selected",
                                  "error_code": "UNKNOWN_RECIPE", "known": exc.known}, status=404)
    except asyncio.TimeoutError:
        return web.json_response({"error": "the recipe did not load within 300 s; read GET /v1/recipe"},
                                 status=503)
    except Exception as exc:  # the recipe's engine failed to load: the previous one still serves
        return web.json_response({"error": f"recipe {req.recipe} failed to load, camera {req.camera} keeps "
                                           f"its previous recipe: {exc}"}, status=422)
    return web.json_response(done)
