"""``GET /openapi.json``: OpenAPI 3.1, built from the same pydantic models the handlers use to
validate bodies, plus models of what they answer. A test keeps paths and routes equal."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .. import __version__
from .control import RecipeSelection, ReloadRequest, ThresholdUpdate
from .inference import TriggerRequest


class Region(BaseModel):
    """A defect region as the API returns it."""
    bbox: list[int] = Field(min_length=4, max_length=4, description="x, y, width, height in frame pixels")
    area: int
    peak_score: float


class Result(BaseModel):
    """One result as the API returns it."""
    seq: int
    camera: str
    frame_index: int = Field(description="-1 for a trigger that got no frame")
    timestamp: float = Field(description="capture time, Unix seconds")
    age_ms: float
    verdict: Literal["OK", "NG", "INVALID", "FAULT"]
    score: float | None = Field(description="normalized, 0.5 = threshold; null when not inspected")
    raw_score: float | None
    threshold: float | None = Field(description="raw image threshold in force")
    model: dict[str, str]
    regions: list[Region]
    part_id: str | None
    reason: str | None
    latency_ms: dict[str, float]
    stale: bool | None = Field(None, description="on /v1/result: true when it no longer stands for the line")
    boot_id: str = Field(description="the service process that numbered it; a new one after each restart")
    recipe: int | None = Field(None, description="the recipe in force on its camera (null: no recipes)")
    error_code: str | None = Field(None, description="why it is not a plain OK/NG: an error code name "
                                   "(README: error codes), null otherwise")
    lot_id: str | None = Field(None, description="the PLC's lot, when its trigger carried one")
    chain: dict | None = Field(None, description="the chained stage's answer, a record of its own linked by "
                               "seq: {seq, camera, stage, label, confidence, latency_ms, regions} or "
                               "{seq, camera, stage, error, latency_ms}")


class ResultsPage(BaseModel):
    """A page of /v1/results."""
    results: list[Result]
    last_seq: int
    boot_id: str = Field(description="this process's boot id")
    never_served: list[list[int]] | None = Field(
        None, description="with a journal: [first, last] seq ranges within the page's span that a "
                          "restart skipped (reserved, never served); no result will ever carry them")


class Error(BaseModel):
    """Every error answer."""
    model_config = ConfigDict(extra="allow")
    error: str


class InferResult(BaseModel):
    """The answer of POST /v1/infer."""
    verdict: Literal["OK", "NG"]
    score: float
    raw_score: float
    threshold: float
    width: int
    height: int
    model: dict[str, str]
    regions: list[Region]
    latency_ms: dict[str, float]
    map_png: str | None = Field(None, description="base64 PNG of the anomaly map (with ?map=png)")
    map_size: list[int] | None = None


class Readiness(BaseModel):
    """The answer of /readyz."""
    ready: bool
    reasons: list[str]


_MODELS = [Region, Result, ResultsPage, Error, InferResult, Readiness, TriggerRequest,
           ThresholdUpdate, ReloadRequest, RecipeSelection]


def _ref(model) -> dict:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(model, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _err(description: str) -> dict:
    return _json(Error, description)


def _query(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


IMAGE_BODY = {t: {"schema": {"type": "string", "format": "binary"}} for t in ("image/jpeg", "image/png", "image/bmp")}
LINE_AUTH = {"401": _err("line token required (security.line_token set)"),
             "429": _err("busy, or too many failed authentications")}
CONTROL_AUTH = {"401": _err("control token required"), "403": _err("the line token is not enough"),
                "429": _err("too many failed authentications")}
CAMERA = _query("camera", {"type": "string"}, "camera name (default: the first)")
BEARER = [{"bearer": []}]


def build_spec() -> dict:
    schemas = {}
    for model in _MODELS:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    text = {"content": {"text/plain": {"schema": {"type": "string"}}}}
    paths = {
        "/v1/result": {"get": {"summary": "Latest result (FAULT when stale)", "parameters": [CAMERA],
                               "responses": {"200": _json(Result, "latest result"), "404": _err("unknown camera"),
                                             "503": _err("no inspected frame yet")}}},
        "/v1/results": {"get": {
            "summary": "Results after a sequence number, oldest first (lossless polling), or by part id",
            "parameters": [_query("after", {"type": "integer", "minimum": 0, "maximum": 2**62}, "last seq seen"),
                           _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "page size"),
                           _query("part_id", {"type": "string"}, "a triggered part's id")],
            "responses": {"200": _json(ResultsPage, "results"), "400": _err("bad parameter"),
                          "404": _err("unknown part"), "410": _err("evicted; carries oldest_seq")}}},
        "/v1/verdict": {"get": {"summary": "One text line: seq verdict score age_ms", "parameters": [CAMERA],
                                "responses": {"200": {"description": "verdict line", **text},
                                              "404": _err("unknown camera"),
                                              "503": {"description": "no result yet: 0 FAULT", **text}}}},
        "/v1/frame.jpg": {"get": {"summary": "Last inspected frame, with overlay unless overlay=0",
                                  "parameters": [CAMERA, _query("overlay", {"type": "string", "enum": ["0", "1"]},
                                                                "draw the heatmap"),
                                                 _query("seq", {"type": "integer", "minimum": 0, "maximum": 2**62},
                                                        "a recent reject's seq (the last 16 are kept)")],
                                  "responses": {"200": {"description": "JPEG", "content": {"image/jpeg": {}}},
                                                "400": _err("bad seq"), "404": _err("unknown camera or frame"),
                                                "503": _err("no frame yet")}}},
        "/v1/stream.mjpg": {"get": {"summary": "Live overlay as multipart JPEG",
                                    "parameters": [CAMERA, _query("fps", {"type": "number", "exclusiveMinimum": 0},
                                                                  "frame rate (capped)")],
                                    "responses": {"200": {"description": "multipart/x-mixed-replace stream",
                                                          "content": {"multipart/x-mixed-replace": {}}},
                                                  "400": _err("bad fps"), "404": _err("unknown camera"),
                                                  "503": _err("too many viewers")}}},
        "/v1/status": {"get": {"summary": "Model, engine, cameras, counters, readiness",
                               "responses": {"200": {"description": "status",
                                                     "content": {"application/json": {"schema": {"type": "object"}}}}}}},
        "/v1/infer": {"post": {
            "summary": "Score an uploaded JPEG/PNG/BMP",
            "parameters": [_query("map", {"type": "string", "enum": ["png"]}, "add the anomaly map")],
            "requestBody": {"required": True, "content": IMAGE_BODY},
            "responses": {"200": _json(InferResult, "result"), "400": _err("malformed image"),
                          **LINE_AUTH, "413": _err("body or declared pixels over the limit"),
                          "415": _err("not JPEG, PNG or BMP"), "429": _err("too many uploads in flight"),
                          "503": _err("engine not ready")}}},
        "/v1/trigger": {"post": {
            "summary": "Inspect the first frame captured after now, for a part",
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref(TriggerRequest)}}},
            "responses": {"200": _json(Result, "the part's result (FAULT at the deadline without a frame)"),
                          "400": _err("bad body"), **LINE_AUTH, "404": _err("unknown camera"),
                          "413": _err("body over 64 KiB"), "415": _err("not application/json"),
                          "429": _err("too many triggers waiting"), "503": _err("engine not ready")}}},
        "/v1/push": {"post": {
            "summary": "An image for a push:// camera: inspected through its pipeline, the result answers",
            "parameters": [_query("camera", {"type": "string"}, "a push:// camera (default: the first)"),
                           _query("part_id", {"type": "string", "maxLength": 128}, "the part's id")],
            "requestBody": {"required": True, "content": IMAGE_BODY},
            "responses": {"200": _json(Result, "the image's result"), "400": _err("malformed image"),
                          **LINE_AUTH, "404": _err("unknown camera"), "409": _err("not a push:// camera"),
                          "413": _err("body or declared pixels over the limit"),
                          "415": _err("not JPEG, PNG or BMP"), "429": _err("too many uploads in flight"),
                          "503": _err("engine not ready")}}},
        "/v1/config/threshold": {"put": {
            "summary": "Move the threshold (next frame on; persisted)", "security": BEARER,
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref(ThresholdUpdate)}}},
            "responses": {"200": {"description": "new threshold", "content": {"application/json": {
                "schema": {"type": "object"}}}}, "400": _err("bad body"), **CONTROL_AUTH,
                "503": _err("the inference worker did not take the change in time (withdrawn)"),
                "507": _err("the manifest could not be saved; nothing changed"),
                "413": _err("body over 64 KiB"), "415": _err("not application/json")}}},
        "/v1/model/reload": {"post": {
            "summary": "Load another bundle; swap after warm-up, keep the old one on failure", "security": BEARER,
            "requestBody": {"required": False, "content": {"application/json": {"schema": _ref(ReloadRequest)}}},
            "responses": {"200": {"description": "loaded", "content": {"application/json": {
                "schema": {"type": "object"}}}}, "400": _err("bad body"), **CONTROL_AUTH,
                "413": _err("body over 64 KiB"), "415": _err("not application/json"),
                "404": _err("no bundle at that path under the model root; previous model still serving"),
                "422": _err("the bundle failed to load; previous model still serving")}}},
        "/v1/recipe": {
            "get": {"summary": "The recipes and the one each camera has selected",
                    "responses": {"200": {"description": "recipes", "content": {"application/json": {
                        "schema": {"type": "object"}}}}, "404": _err("no recipes configured")}},
            "put": {"summary": "Select a camera's recipe (next frame on; loaded and warmed first)",
                    "security": BEARER,
                    "requestBody": {"required": True, "content": {"application/json": {
                        "schema": _ref(RecipeSelection)}}},
                    "responses": {"200": {"description": "in force", "content": {"application/json": {
                        "schema": {"type": "object"}}}}, "400": _err("bad body"), **CONTROL_AUTH,
                        "404": _err("unknown camera, or unknown recipe (the camera then answers FAULT)"),
                        "409": _err("no recipes configured"),
                        "413": _err("body over 64 KiB"), "415": _err("not application/json"),
                        "422": _err("the recipe failed to load; the previous one still serves"),
                        "503": _err("the recipe did not load in time")}}},
        "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "alive", "content": {
            "application/json": {"schema": {"type": "object"}}}}}}},
        "/readyz": {"get": {"summary": "Readiness: engine warm and fresh frames from every camera",
                            "responses": {"200": _json(Readiness, "ready"), "503": _json(Readiness, "not ready")}}},
        "/metrics": {"get": {"summary": "Prometheus metrics",
                             "responses": {"200": {"description": "exposition format", **text}}}},
        "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {
            "description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"type": "object"}}}}}}},
        "/": {"get": {"summary": "Dashboard page", "responses": {"200": {
            "description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}}}},
    }
    return {"openapi": "3.1.0",
            "info": {"title": "edge-ad", "version": __version__,
                     "description": "Visual anomaly detection service: results for PLC gateways, dashboards "
                                    "and operators. Scores are normalized so that 0.5 is the threshold."},
            "paths": paths,
            "components": {"schemas": schemas,
                           "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}}}
