"""Recipes: numbered products, each with its bundle and, per camera, the part of the frame judged.

The configuration is fixed for the pipeline's life (``RecipeSet``); which recipes are warm and
which one each camera has selected is the worker's state (``Pipeline.models``), changed only by
a recipe job on the worker, so a switch lands between two frames and never inside a batch.

An engine is loaded and warmed before a recipe can be selected: at start, every recipe whose
engine fits the memory budget (the default first); a recipe beyond the budget loads when it is
selected, and its camera is not ready until then. Selecting a number that is not configured
makes that camera's results FAULT (UNKNOWN_RECIPE) until a known recipe is selected: the line
has changed product, so the previous model's OK would be a guess.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..bundle import Manifest
from ..decision.camera import CameraDecision, load_ignore_mask

MODEL_FILES = ("*.onnx", "*.engine", "*.plan")
ENGINE_MEMORY_FACTOR = 2.0  # weights plus activations and workspace: a deliberate overestimate


class UnknownRecipe(LookupError):
    """The recipe number selected is not configured."""

    def __init__(self, number: int, known: list[int]):
        super().__init__(f"recipe {number} is not configured (the recipes are {known})")
        self.number, self.known = number, known


@dataclass(frozen=True)
class CameraSetting:
    """What a recipe sets for one camera, before it is sized to the recipe's model."""
    roi_xywh: tuple[int, int, int, int] | None = None
    rotate_deg: int = 0  # the camera's mounting, the same in every recipe
    ignore_mask: Path | None = None
    min_defect_area_px: int = 0

    def decision(self, manifest: Manifest) -> CameraDecision | None:
        if not (self.roi_xywh or self.rotate_deg or self.ignore_mask or self.min_defect_area_px):
            return None
        ignore = load_ignore_mask(self.ignore_mask, *manifest.map_size) if self.ignore_mask else None
        return CameraDecision(self.roi_xywh, self.rotate_deg, ignore, self.min_defect_area_px)


@dataclass(frozen=True)
class Recipe:
    """One product."""
    number: int
    name: str
    bundle_path: Path
    cameras: dict[str, CameraSetting] = field(default_factory=dict)

    def decisions(self, manifest: Manifest) -> dict[str, CameraDecision]:
        made = {cam: s.decision(manifest) for cam, s in self.cameras.items()}
        return {cam: d for cam, d in made.items() if d is not None}

    def estimated_mb(self) -> float:
        """What its engine is expected to take: the model files, times a margin."""
        size = sum(f.stat().st_size for pattern in MODEL_FILES for f in self.bundle_path.glob(pattern))
        return ENGINE_MEMORY_FACTOR * size / 2**20


@dataclass(frozen=True)
class RecipeSet:
    """The configured recipes: fixed for the pipeline's life."""
    recipes: dict[int, Recipe]
    default: int
    memory_budget_mb: float

    def get(self, number: int) -> Recipe:
        try:
            return self.recipes[number]
        except KeyError:
            raise UnknownRecipe(number, sorted(self.recipes)) from None

    def preload(self) -> list[Recipe]:
        """The recipes warmed at start, default first, while their estimates fit the budget."""
        order = [self.recipes[self.default]] + [r for n, r in sorted(self.recipes.items()) if n != self.default]
        chosen, used = [], 0.0
        for recipe in order:
            need = recipe.estimated_mb()
            if chosen and used + need > self.memory_budget_mb:
                continue
            chosen.append(recipe)
            used += need
        return chosen

    def summary(self) -> list[dict]:
        return [{"recipe": n, "name": r.name, "bundle": str(r.bundle_path)} for n, r in sorted(self.recipes.items())]
