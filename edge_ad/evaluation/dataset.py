"""The test split of an MVTec-AD-layout category: ``test/good``, ``test/<defect>/*``, and
``ground_truth/<defect>/<stem>_mask.png``. Read as is, so MVTec AD itself works too."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import EdgeAdError
from ..imageio import IMAGE_SUFFIXES


@dataclass(frozen=True)
class Sample:
    """One test image of an MVTec-layout split, with its label and mask."""
    path: Path
    defect: str  # "good" or the defect type
    mask_path: Path | None

    @property
    def is_defect(self) -> bool:
        return self.defect != "good"


def test_set(root: str | Path) -> list[Sample]:
    root = Path(root)
    test = root / "test"
    if not test.is_dir():
        raise EdgeAdError(f"{root} has no test/ folder: evaluate needs an MVTec-layout category "
                          "(test/good, test/<defect>, ground_truth/<defect>)")
    samples = []
    for folder in sorted(p for p in test.iterdir() if p.is_dir()):
        for img in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            mask = None
            if folder.name != "good":
                candidate = root / "ground_truth" / folder.name / f"{img.stem}_mask.png"
                mask = candidate if candidate.is_file() else None
            samples.append(Sample(img, folder.name, mask))
    kinds = {s.defect for s in samples}
    if "good" not in kinds or len(kinds) < 2:
        raise EdgeAdError(f"{test} needs good/ and at least one defect folder with images "
                          f"(found: {', '.join(sorted(kinds)) or 'nothing'})")
    return samples
