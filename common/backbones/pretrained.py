"""The published weight files of the IR-50 + MobileFaceNet models (POSTER, POSTER++), loaded once for both."""
from __future__ import annotations

from pathlib import Path

from common.adapter import LoadReport
from common.backbones.ir50 import IR50, load_ir50
from common.backbones.mobilefacenet import MobileFaceNet, load_mobilefacenet

IR50_FILE = "ir50.pth"
# The name the authors' and the suite's code load; the reference suite's README lists it without ".tar"
# (the same torch.save file): that alias is declared in the models' meta and resolved before loading,
# so `paths` is always keyed by these names.
LANDMARK_FILE = "mobilefacenet_model_best.pth.tar"


def _pick(paths: dict[str, Path], name: str) -> Path:
    if name not in paths:
        raise KeyError(f"no path given for {name!r}; got {sorted(paths)} (common.fingerprint.resolve_weights "
                       "keys the files by their names in the model's meta: pretrained_files)")
    return Path(paths[name])


def load_ir50_and_landmarks(ir_back: IR50, face_landback: MobileFaceNet, paths: dict[str, Path], *,
                            allow_partial: bool = False) -> LoadReport:
    """ir50.pth into the image backbone (either key layout), the landmark file strictly into the
    frozen MobileFaceNet; one report over both files."""
    ir = load_ir50(ir_back, _pick(paths, IR50_FILE), allow_partial=allow_partial)
    lm = load_mobilefacenet(face_landback, _pick(paths, LANDMARK_FILE))
    return ir.merge(lm, f"IR-50 {ir.loaded}/{ir.expected}, MobileFaceNet {lm.loaded}/{lm.expected}")
