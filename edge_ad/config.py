"""Service configuration: one YAML file, strict pydantic (unknown keys are errors), every field
described and bounded. Environment overrides are applied here and nowhere else:
``EDGE_AD_MODEL``, ``EDGE_AD_HOST``, ``EDGE_AD_PORT``, ``EDGE_AD_TOKEN``, ``EDGE_AD_LINE_TOKEN``, ``EDGE_AD_SOURCE``
(replaces the cameras with one camera ``cam0``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, field_validator, model_validator

from .errors import ConfigError
from .validation import one_line


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CameraConfig(_Strict):
    """One camera: its source and what of its frame is judged."""
    name: str = Field("cam0", pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="camera id in results and metrics")
    source: str = Field(description="source URI: file://PATH, dir://PATH (?loop=1&fps=N)")
    roi: tuple[int, int, int, int] | None = Field(None, description="x, y, width, height of the inspected "
                                                  "region, in frame pixels")
    rotate: Literal[0, 90, 180, 270] = Field(0, description="clockwise rotation after the ROI crop")
    ignore_mask: Path | None = Field(None, description="image over the inspected region; white = ignore")
    min_defect_area_px: int = Field(0, ge=0, le=100_000_000,
                                    description="an NG needs a defect region at least this large")

    @field_validator("roi")
    @classmethod
    def _roi_positive(cls, roi):
        if roi is not None and (roi[0] < 0 or roi[1] < 0 or roi[2] <= 0 or roi[3] <= 0):
            raise ValueError("roi is x, y, width, height with x, y >= 0 and width, height > 0")
        return roi


class RecipeCameraConfig(_Strict):
    """What a recipe sets for one camera: the part of its frame judged and how large a defect is."""
    roi: tuple[int, int, int, int] | None = Field(None, description="x, y, width, height of the inspected "
                                                  "region, in frame pixels")
    ignore_mask: Path | None = Field(None, description="image over the inspected region; white = ignore")
    min_defect_area_px: int = Field(0, ge=0, le=100_000_000,
                                    description="an NG needs a defect region at least this large")

    _roi_positive = field_validator("roi")(CameraConfig._roi_positive.__func__)


class RecipeConfig(_Strict):
    """One product: its bundle, and per camera its ROI, ignore mask and minimum defect area."""
    name: str = Field(pattern=r"^[A-Za-z0-9 _.-]{1,64}$", description="what operators call the product")
    model: Path = Field(description="model bundle directory")
    cameras: dict[str, RecipeCameraConfig] = Field(default_factory=dict,
                                                   description="per camera name; cameras not named judge "
                                                               "the whole frame")


RECIPE_MAX = 65535  # a Modbus register holds the recipe number


class RecipesConfig(_Strict):
    """``recipes:``: numbered products the PLC (or PUT /v1/recipe) selects per camera. Written as
    ``{default: 1, 1: {name: ..., model: ...}, 2: {...}}``; ``items:`` may hold the numbers too."""
    default: int = Field(ge=0, le=RECIPE_MAX, description="the recipe every camera starts with")
    memory_budget_mb: float = Field(2048, gt=0, le=1_000_000, description="recipes are loaded and warmed "
                                    "at start while their engines fit in this (estimated from the model "
                                    "files); beyond it, a recipe loads when selected")
    items: dict[int, RecipeConfig] = Field(min_length=1, max_length=256)

    @model_validator(mode="before")
    @classmethod
    def _numbers_beside_default(cls, data):
        # the natural YAML puts the numbered recipes next to `default:`
        if isinstance(data, dict):
            data = dict(data)
            items = dict(data.pop("items", None) or {})
            for key in [k for k in data if isinstance(k, int) or (isinstance(k, str) and k.isdigit())]:
                items[int(key)] = data.pop(key)
            data["items"] = items
        return data

    @model_validator(mode="after")
    def _default_known(self):
        if any(not 0 <= n <= RECIPE_MAX for n in self.items):
            raise ValueError(f"recipe numbers are 0-{RECIPE_MAX}, got {sorted(self.items)}")
        if self.default not in self.items:
            raise ValueError(f"recipes.default is {self.default}, but the recipes are {sorted(self.items)}")
        return self


class _EngineCommon(_Strict):
    """What the pipeline needs of any backend."""
    batch_size: int = Field(1, ge=1, le=64, description="frames of several cameras inspected per engine call")
    hang_timeout_s: float = Field(10.0, ge=0.5, le=600, description="an engine call longer than this is "
                                  "a hang: its frames are answered FAULT and a fresh engine is loaded")

    def engine_options(self) -> dict:
        """The keyword options this backend's engine takes (engines.create_engine)."""
        return self.model_dump(exclude={"backend", "batch_size", "hang_timeout_s"})


class OnnxRuntimeConfig(_EngineCommon):
    """``engine:`` for ONNX Runtime: providers and threads."""
    backend: Literal["onnxruntime"] = Field("onnxruntime", description="inference backend")
    providers: list[str] | None = Field(None, description="ONNX Runtime providers in order; default TensorRT, CUDA, CPU")
    threads: int = Field(0, ge=0, le=64, description="engine intra-op threads; 0 = all cores but one "
                                                   "(the capture, decision and HTTP threads keep one)")


class TensorRTConfig(_EngineCommon):
    """``engine:`` for TensorRT: the plan's precision, DLA core, and whether to build one at start."""
    backend: Literal["tensorrt"] = Field(description="inference backend")
    precision: Literal["fp32", "fp16", "int8"] = Field("fp16", description="the engine's precision")
    dla_core: int | None = Field(None, ge=0, le=3, description="run on this DLA core (Jetson Orin/Xavier)")
    build_missing: bool = Field(False, description="build the engine at start when none fits this "
                                                   "device (minutes), instead of refusing to start")


def _backend_of(value) -> str:
    if isinstance(value, dict):
        return value.get("backend", "onnxruntime")
    return getattr(value, "backend", "onnxruntime")


# One options model per backend, chosen by ``backend`` (onnxruntime when it is left out): a key
# of another backend (precision under onnxruntime, threads under tensorrt) is an error that
# names the key, not an option silently ignored.
EngineConfig = Annotated[Union[Annotated[OnnxRuntimeConfig, Tag("onnxruntime")],
                               Annotated[TensorRTConfig, Tag("tensorrt")]], Discriminator(_backend_of)]


class _OutputCommon(_Strict):
    """What every delivering output has: a name, which verdicts it takes, and its outbox."""
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,64}$",
                             description="the output's name in metrics and logs (default: its type)")
    verdicts: list[Literal["OK", "NG", "INVALID", "FAULT"]] | None = Field(
        None, description="only results with these verdicts are sent (default: all)")
    outbox: Path | None = Field(None, description="SQLite file of undelivered messages (default: "
                                                  "edge-ad-outbox-NAME.sqlite beside the journal)")
    outbox_max_rows: int = Field(100_000, ge=1, le=10_000_000, description="undelivered messages kept; "
                                 "beyond, the oldest are dropped and counted")
    outbox_max_age_s: float = Field(7 * 86400, gt=0, le=365 * 86400, description="undelivered messages "
                                    "older than this are dropped and counted")


class WebhookConfig(_OutputCommon):
    """``publish: [{type: webhook, ...}]``: every wanted result POSTed as JSON, signed."""
    type: Literal["webhook"]
    url: str = Field(pattern=r"^https?://", description="where results are POSTed")
    secret: str | None = Field(None, min_length=16, description="HMAC-SHA256 key of the X-Edge-AD-Signature header")
    timeout_s: float = Field(5.0, gt=0, le=120, description="a POST not answered within this is retried")


class MqttConfig(_OutputCommon):
    """``publish: [{type: mqtt, ...}]``: every wanted result as a JSON message, and a status topic."""
    type: Literal["mqtt"]
    url: str = Field(pattern=r"^mqtts?://", description="mqtt://HOST[:PORT], or mqtts:// for TLS")
    topic: str = Field("edge-ad/{camera}", min_length=1, description="topic of each camera's results")
    qos: Literal[0, 1, 2] = 1
    status_topic: str = Field("edge-ad/status", min_length=1, description="retained readiness, and the "
                              "last will 'offline'")
    username: str | None = None
    password: str | None = None
    tls_ca: Path | None = Field(None, description="CA certificate of an mqtts:// broker (default: the system's)")


OutputConfig = Annotated[Union[WebhookConfig, MqttConfig], Field(discriminator="type")]


class ChainConfig(_Strict):
    """``chain:``: a second stage for the chosen verdicts (a classifier bundle, or an HTTP endpoint)."""
    on: list[Literal["OK", "NG", "INVALID"]] = Field(default_factory=lambda: ["NG"], min_length=1,
                                                      description="the verdicts whose frames go to the stage")
    stage: str = Field(min_length=1, description="a classifier bundle directory (edge-ad import-classifier), "
                       "or an http(s):// endpoint that takes an image and answers {label, confidence}")
    input: Literal["regions", "frame"] = Field("regions", description="the defect regions' crops (with "
                                               "context), or the whole inspected frame")
    max_regions: int = Field(4, ge=1, le=64, description="crops per result, largest regions first")
    timeout_s: float = Field(2.0, gt=0, le=60, description="a slower answer is recorded as an error")
    queue_size: int = Field(16, ge=1, le=10_000, description="results waiting for the stage; beyond, "
                            "dropped and counted")


class ServerConfig(_Strict):
    """The HTTP listener and its limits."""
    host: str = Field("127.0.0.1", description="listen address; 0.0.0.0 to serve the network")
    port: int = Field(8080, ge=1, le=65535)
    max_body_mb: float = Field(8.0, gt=0, le=512, description="request bodies above this are refused (413) unread")
    max_image_pixels: int = Field(40_000_000, ge=1, le=1_000_000_000,
                                  description="uploaded images declaring more pixels are refused before decoding")
    stream_max_clients: int = Field(4, ge=0, le=64, description="concurrent /v1/stream.mjpg viewers")
    stream_max_fps: float = Field(10.0, gt=0, le=60, description="frame rate cap of /v1/stream.mjpg")
    trigger_timeout_ms: int = Field(2000, ge=10, le=60_000, description="default deadline of POST /v1/trigger")
    header_timeout_s: float = Field(10.0, ge=0.5, le=10.0, description="a connection whose request headers "
                                    "are not complete within this is closed (slow clients)")


class ResultsConfig(_Strict):
    """The result ring, the journal and when a result is stale."""
    ring_size: int = Field(10_000, ge=10, le=1_000_000, description="results kept in memory for polling")
    journal: Path | None = Field(None, description="SQLite file every result is appended to; numbering "
                                                   "continues from it after a restart")
    journal_max_rows: int = Field(1_000_000, ge=1000, le=100_000_000, description="journal retention by count")
    journal_max_age_days: float = Field(30, gt=0, le=3650, description="journal retention by age")
    stale_periods: float = Field(2.0, gt=0, le=100,
                                 description="a result older than this many frame periods (plus the "
                                             "pipeline's own latency) is never served as a fresh OK")


class DriftConfig(_Strict):
    """The drift guard's window, warm-up and significance."""
    window: int = Field(300, ge=20, le=100_000, description="recent scores compared with the calibration set")
    warmup: int = Field(100, ge=10, le=100_000, description="scores collected before the first verdict")
    alpha: float = Field(1e-4, gt=0, lt=0.5, description="KS p-value below which the line has drifted")


class QualityConfig(_Strict):
    """The image-quality guard's limits (frames it refuses to judge)."""
    enabled: bool = Field(True, description="judge frames that are dark, bright, clipped, blurred or frozen INVALID")
    min_brightness: float = Field(20.0, ge=0, le=255)
    max_brightness: float = Field(235.0, ge=0, le=255)
    max_clipped: float = Field(0.5, gt=0, le=1, description="fraction of pixels at 0-5 or 250-255")
    min_sharpness_ratio: float = Field(0.3, ge=0, le=1,
                                       description="sharpness below this share of the calibration images' = blurred")
    frozen_s: float = Field(2.0, gt=0, le=60, description="identical frames for this long = frozen stream")
    frozen_delta: float = Field(0.3, gt=0, le=50, description="mean grey-level change below which frames are identical")


class EvidenceConfig(_Strict):
    """Where evidence frames go, and how much disk they may take."""
    path: Path | None = Field(None, description="folder for NG/INVALID frames (and sampled OK ones); off when unset")
    quota_mb: float = Field(2048, gt=0, le=10_000_000, description="disk quota; the oldest evidence goes first")
    ok_every: int = Field(100, ge=0, le=1_000_000, description="keep every Nth OK frame too (0: none)")
    clip_frames: int = Field(0, ge=0, le=600, description="with each NG, a lossless clip of the N frames "
                             "captured before it and the N after (0: no clips)")
    clip_width: int = Field(640, ge=32, le=8192, description="clip frames are shrunk to this width "
                            "(never enlarged); the ring holds (2N+1) of them per camera")


class SecurityConfig(_Strict):
    """The bearer tokens of the control and line endpoints."""
    token: str | None = Field(None, min_length=16, max_length=256,
                              description="bearer token for control endpoints (PUT/POST); without one they "
                                          "answer 401. Prefer the EDGE_AD_TOKEN environment variable")
    line_token: str | None = Field(None, min_length=16, max_length=256,
                                   description="bearer token for the line routes (trigger, push, infer); "
                                               "the control token is accepted there too. Without one they "
                                               "follow protect_reads. Prefer EDGE_AD_LINE_TOKEN")
    protect_reads: bool = Field(False, description="require a token (control or line) for read endpoints "
                                                   "too (/healthz and /readyz stay open for orchestrators)")


class ModelsConfig(_Strict):
    """Where reloads may load bundles from."""
    root: Path | None = Field(None, description="POST /v1/model/reload loads only bundles under this "
                                                "directory; default: the directory that holds `model`")


class OpcUaConfig(_Strict):
    """``plc.opcua``: the OPC UA server of the handshake."""
    endpoint: str = Field("opc.tcp://0.0.0.0:4840/edge-ad", pattern=r"^opc\.tcp://",
                          description="where PLCs connect")
    allow_anonymous: bool = Field(False, description="anonymous clients may write too, and the None "
                                  "security policy is offered (a closed cell network, tests); otherwise "
                                  "anonymous clients only read and writes need username/password")
    username: str | None = Field(None, min_length=1, max_length=64, description="the PLC's login for writes")
    password: str | None = Field(None, min_length=8, max_length=256,
                                 description="its password; prefer EDGE_AD_OPCUA_PASSWORD")
    certificate_dir: Path | None = Field(None, description="the server's certificate and key (made at "
                                         "first start when missing); default: opcua/ beside the journal, or "
                                         "in ~/.local/state/edge-ad")
    namespace: str = Field("urn:edge-ad", min_length=1, description="namespace URI of the handshake nodes")


class ModbusConfig(_Strict):
    """``plc.modbus``: the Modbus TCP server of the handshake (Modbus has no authentication)."""
    host: str = Field("127.0.0.1", description="bind address; a PLC on the network needs 0.0.0.0 "
                      "and an allow list")
    port: int = Field(5020, ge=1, le=65535)
    allow: list[str] = Field(default_factory=list, description="client IP addresses allowed to connect "
                             "(empty: any that can reach the bind address)")
    read_only: bool = Field(False, description="refuse every write (a display or a historian reads only)")
    device_id: int = Field(1, ge=0, le=247, description="the unit id the PLC addresses (0: any)")


class PlcConfig(_Strict):
    """``plc:``: the handshake servers for PLCs that cannot poll HTTP."""
    opcua: OpcUaConfig | None = None
    modbus: ModbusConfig | None = None
    trigger_timeout_ms: int = Field(2000, ge=10, le=60_000, description="a trigger without a frame within "
                                    "this is answered FAULT (DEADLINE)")
    ack_timeout_s: float = Field(60.0, gt=0, le=86400, description="a ready result the PLC does not "
                                 "acknowledge within this is withdrawn (ACK_TIMEOUT) and logged")
    heartbeat_s: float = Field(1.0, ge=0.05, le=60, description="the Heartbeat counter's period")


class ServiceConfig(_Strict):
    """The whole service configuration, one YAML file."""
    model: Path | None = Field(None, description="model bundle directory (or recipes:)")
    recipes: RecipesConfig | None = Field(None, description="numbered products, each with its bundle; "
                                          "replaces model: and the cameras' roi, ignore_mask and "
                                          "min_defect_area_px")
    plc: PlcConfig = PlcConfig()
    chain: ChainConfig | None = Field(None, description="a second stage on the chosen verdicts")
    models: ModelsConfig = ModelsConfig()
    cameras: list[CameraConfig] = Field(min_length=1, max_length=16)
    engine: EngineConfig = OnnxRuntimeConfig()
    publish: list[OutputConfig] = Field(default_factory=list, max_length=16,
                                         description="where results go besides HTTP (needs results.journal)")

    @model_validator(mode="after")
    def _outputs_need_the_journal(self):
        # the outboxes deliver from the journal: what a queue dropped is read back from it, and
        # only the journal's numbering continues across restarts, as an outbox's does
        if self.publish and self.results.journal is None:
            raise ValueError("publish: needs results.journal (the outputs deliver from it); "
                             "add results: {journal: /var/lib/edge-ad/journal.sqlite}")
        return self
    server: ServerConfig = ServerConfig()
    results: ResultsConfig = ResultsConfig()
    security: SecurityConfig = SecurityConfig()
    drift: DriftConfig = DriftConfig()
    quality: QualityConfig = QualityConfig()
    evidence: EvidenceConfig = EvidenceConfig()

    @model_validator(mode="after")
    def _model_or_recipes(self):
        if (self.model is None) == (self.recipes is None):
            raise ValueError("give either model: (one bundle) or recipes: (one per product), "
                             + ("not both" if self.model is not None else "got neither"))
        if self.recipes is not None:
            names = {c.name for c in self.cameras}
            for cam in self.cameras:
                for key in ("roi", "ignore_mask", "min_defect_area_px"):
                    if getattr(cam, key):
                        raise ValueError(f"camera {cam.name}: with recipes:, {key} belongs in each "
                                         f"recipe's cameras: {{{cam.name}: {{{key}: ...}}}}")
            for n, recipe in self.recipes.items.items():
                if unknown := sorted(set(recipe.cameras) - names):
                    raise ValueError(f"recipe {n} ({recipe.name}) names cameras {unknown}, "
                                     f"but the cameras are {sorted(names)}")
        return self

    @property
    def bundles(self) -> list[Path]:
        """Every bundle the service may serve: the model, or each recipe's."""
        return [self.model] if self.recipes is None else [r.model for r in self.recipes.items.values()]

    @field_validator("cameras")
    @classmethod
    def _unique_names(cls, cams):
        names = [c.name for c in cams]
        if len(set(names)) != len(names):
            raise ValueError(f"camera names must be unique, got {names}")
        return cams


def _env_overrides(raw: dict) -> dict:
    env = os.environ
    if "EDGE_AD_MODEL" in env:
        raw["model"] = env["EDGE_AD_MODEL"]
    if "EDGE_AD_SOURCE" in env:
        raw["cameras"] = [{"name": "cam0", "source": env["EDGE_AD_SOURCE"]}]
    for key, field in (("EDGE_AD_HOST", "host"), ("EDGE_AD_PORT", "port")):
        if key in env:
            raw.setdefault("server", {})[field] = env[key]
    # an empty variable (compose's ${EDGE_AD_LINE_TOKEN:-}) means unset, not an empty token
    if env.get("EDGE_AD_TOKEN"):
        raw.setdefault("security", {})["token"] = env["EDGE_AD_TOKEN"]
    if env.get("EDGE_AD_OPCUA_PASSWORD") and isinstance((raw.get("plc") or {}).get("opcua"), dict):
        raw["plc"]["opcua"]["password"] = env["EDGE_AD_OPCUA_PASSWORD"]
    if env.get("EDGE_AD_LINE_TOKEN"):
        raw.setdefault("security", {})["line_token"] = env["EDGE_AD_LINE_TOKEN"]
    return raw


def build_config(raw: dict, where: str = "config") -> ServiceConfig:
    try:
        return ServiceConfig.model_validate(_env_overrides(dict(raw)))
    except ValidationError as exc:
        raise ConfigError(one_line(exc, where, ServiceConfig)) from exc


def load_config(path: str | Path) -> ServiceConfig:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a mapping of settings")
    config = build_config(raw, str(path))
    # Relative paths are relative to the config file, not to wherever the service was started.
    base = path.parent
    cameras = [c.model_copy(update={
        "source": _resolve_source(c.source, base),
        "ignore_mask": None if c.ignore_mask is None or c.ignore_mask.is_absolute()
        else (base / c.ignore_mask).resolve()}) for c in config.cameras]
    def resolved(p: Path | None) -> Path | None:
        return None if p is None or p.is_absolute() else (base / p).resolve()

    model = None if config.model is None else (resolved(config.model) or config.model)
    recipes = config.recipes
    if recipes is not None:
        recipes = recipes.model_copy(update={"items": {n: r.model_copy(update={
            "model": resolved(r.model) or r.model,
            "cameras": {c: rc.model_copy(update={"ignore_mask": resolved(rc.ignore_mask) or rc.ignore_mask})
                        for c, rc in r.cameras.items()}}) for n, r in recipes.items.items()}})
    chain = config.chain
    if chain is not None and "://" not in chain.stage and not Path(chain.stage).is_absolute():
        chain = chain.model_copy(update={"stage": str((base / chain.stage).resolve())})
    plc = config.plc
    if plc.opcua is not None and plc.opcua.certificate_dir is not None:
        plc = plc.model_copy(update={"opcua": plc.opcua.model_copy(update={
            "certificate_dir": resolved(plc.opcua.certificate_dir) or plc.opcua.certificate_dir})})
    results = config.results
    if results.journal is not None and not results.journal.is_absolute():
        results = results.model_copy(update={"journal": (base / results.journal).resolve()})
    evidence = config.evidence
    if evidence.path is not None and not evidence.path.is_absolute():
        evidence = evidence.model_copy(update={"path": (base / evidence.path).resolve()})
    models = config.models
    if models.root is not None and not models.root.is_absolute():
        models = models.model_copy(update={"root": (base / models.root).resolve()})
    publish = [o.model_copy(update={k: (base / v).resolve() for k in ("outbox", "tls_ca")
                                    if (v := getattr(o, k, None)) is not None and not v.is_absolute()})
               for o in config.publish]
    return config.model_copy(update={"model": model, "cameras": cameras, "results": results,
                                     "evidence": evidence, "models": models, "publish": publish,
                                     "recipes": recipes, "plc": plc, "chain": chain})


def _resolve_source(uri: str, base: Path) -> str:
    scheme, sep, rest = uri.partition("://")
    if scheme not in ("file", "dir") or not sep or rest.startswith("/"):
        return uri
    path, q, query = rest.partition("?")
    return f"{scheme}://{(base / path).resolve()}{q}{query}"
