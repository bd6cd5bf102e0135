"""MTCNN from facenet-pytorch: loading, and batched detection of boxes, scores and 5 landmarks.

facenet-pytorch is installed with --no-deps (its pins would replace our torch). Its package
__init__ also imports InceptionResnetV1, which needs `requests`; MTCNN does not. When that
import fails on a missing dependency, the MTCNN module alone is loaded from the installed
package (weights included, read from the wheel's data/ folder), under a private name so the
real `facenet_pytorch` name is never shadowed.
"""
from __future__ import annotations

import functools
import importlib
import importlib.util
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from common.errors import ConfigError

INSTALL_HINT = "pip install --no-deps facenet-pytorch==2.6.0"
_PRIVATE_PACKAGE = "_preprocess_facenet_models"


@dataclass(frozen=True)
class Detection:
    """One face, in the coordinates of the image it was found in."""

    box: np.ndarray  # (4,) x1, y1, x2, y2
    prob: float
    # (5, 2) x, y: left eye, right eye, nose, mouth left, mouth right ("left" = image left).
    # As MTCNN reports them; its MATLAB-derived box arithmetic puts them about half a pixel to
    # one pixel right of and below pixel-index coordinates (measured by mirroring photos). Not
    # corrected: the offset is the same for every image, so every aligned face shifts alike.
    points: np.ndarray

    @property
    def area(self) -> float:
        return float(max(self.box[2] - self.box[0], 0.0) * max(self.box[3] - self.box[1], 0.0))

    def mapped(self, scale: float, offset: tuple[float, float]) -> "Detection":
        """The same face in a parent image: p_parent = p * scale + offset."""
        off = np.asarray(offset, dtype=np.float64)
        return Detection(self.box * scale + np.tile(off, 2), self.prob, self.points * scale + off)


@functools.cache
def _mtcnn_module() -> ModuleType:
    before = set(sys.modules)
    try:
        return importlib.import_module("facenet_pytorch.models.mtcnn")
    except ModuleNotFoundError as err:
        # drop the half-imported package so a later import of it starts clean
        for name in set(sys.modules) - before:
            if name == "facenet_pytorch" or name.startswith("facenet_pytorch."):
                del sys.modules[name]
        spec = importlib.util.find_spec("facenet_pytorch")
        if spec is None or not spec.submodule_search_locations:
            raise ModuleNotFoundError(
                f"face alignment needs MTCNN from facenet-pytorch; install it with `{INSTALL_HINT}`"
            ) from err
        missing = err.name
    models_dir = Path(next(iter(spec.submodule_search_locations))) / "models"
    if _PRIVATE_PACKAGE not in sys.modules:
        package = types.ModuleType(_PRIVATE_PACKAGE)
        package.__path__ = [str(models_dir)]
        sys.modules[_PRIVATE_PACKAGE] = package
    module = importlib.import_module(f"{_PRIVATE_PACKAGE}.mtcnn")
    print(
        f"[align] facenet_pytorch package import needs {missing!r} (absent); "
        f"loaded its MTCNN module alone from {models_dir}",
        file=sys.stderr,
    )
    return module


def load_mtcnn(device: str | None = None, min_face_size: int = 20, threads: int | None = None):
    """The MTCNN detector (P/R/O-nets with the wheel's weights) in eval mode on `device`.

    `threads` sets torch's CPU threads for this process (None: leave torch's default).
    """
    import torch

    if threads is not None:
        if threads < 1:
            raise ConfigError(f"threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    module = _mtcnn_module()
    net = module.MTCNN(min_face_size=min_face_size, keep_all=True, device=torch.device(device))
    return net.eval()


def detect(net, images: list[np.ndarray]) -> list[list[Detection]]:
    """Detect faces in RGB uint8 (H, W, 3) arrays; one list of Detection per image.

    MTCNN runs one batched pass per group of equally sized images (its batch mode requires
    equal sizes); images of other sizes go in their own groups. The caller decides the order.
    """
    results: list[list[Detection]] = [[] for _ in images]
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, img in enumerate(images):
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"image {i}: expected RGB uint8 (H, W, 3), got {img.dtype} {img.shape}")
        groups.setdefault(img.shape, []).append(i)
    for indices in groups.values():
        batch = np.stack([images[i] for i in indices])
        boxes, probs, points = net.detect(batch, landmarks=True)
        for i, b, p, pts in zip(indices, boxes, probs, points):
            if b is None:
                continue
            b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
            p = np.asarray(p, dtype=np.float64).reshape(-1)
            pts = np.asarray(pts, dtype=np.float64).reshape(-1, 5, 2)
            results[i] = [Detection(b[k], float(p[k]), pts[k]) for k in range(len(b))]
    return results
