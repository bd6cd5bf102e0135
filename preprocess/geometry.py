"""The 5-point template, the similarity fit to it, and the warp. numpy + PIL only (no torch).

Coordinates are pixel indices (x, y), pixel centres at integers, as MTCNN reports landmarks and
as the ArcFace template is published. PIL samples at pixel centres x + 0.5; `warp` converts.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from common.errors import ConfigError

# ArcFace / insightface 5-point template for a 112x112 crop: left eye, right eye, nose tip,
# left mouth corner, right mouth corner ("left" = image left).
ARCFACE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
SIZES = (112, 224)


def template(size: int = 112, margin: float = 0.0) -> np.ndarray:
    """The 5 target points for a `size` x `size` output with `margin` extra context per side.

    margin is a fraction of the 112-pixel template crop added on every side before scaling
    to `size` (the "inner padding factor" of the widely used warp_and_crop_face recipe):
    0 gives the ArcFace crop, 0.25 the looser crop the reference suite aligned ExpW with.
    """
    if size <= 0:
        raise ConfigError(f"size must be positive, got {size}")
    if margin < 0:
        raise ConfigError(f"margin must be >= 0, got {margin}")
    scale = size / (112.0 * (1.0 + 2.0 * margin))
    return (ARCFACE_112 + 112.0 * margin) * scale


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping src onto dst.

    Umeyama (1991): closed form from the SVD of the cross-covariance; the reflection guard
    keeps it a proper rotation. Returns the 2x3 matrix M with dst ~= M @ [x, y, 1].
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"need two matching (N>=2, 2) point arrays, got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    sc, dc = src - mu_s, dst - mu_d
    var_s = (sc**2).sum() / len(src)
    if var_s <= 0:
        raise ValueError("source points are all identical; no similarity transform exists")
    cov = dc.T @ sc / len(src)
    u, d, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1.0
    rot = u @ sign @ vt
    scale = np.trace(np.diag(d) @ sign) / var_s
    m = np.empty((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def apply(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map (N, 2) points with the 2x3 matrix `m`."""
    points = np.asarray(points, dtype=np.float64)
    return points @ m[:, :2].T + m[:, 2]


def invert(m: np.ndarray) -> np.ndarray:
    a = np.linalg.inv(m[:, :2])
    return np.hstack([a, (-a @ m[:, 2])[:, None]])


def box_crop_matrix(box: tuple[float, float, float, float], size: int) -> np.ndarray:
    """Scale + shift that maps the square around `box` (x1, y1, x2, y2; centred, side = the
    longer edge) onto a size x size output, edge to edge."""
    x1, y1, x2, y2 = box
    side = max(x2 - x1, y2 - y1)
    if side <= 0:
        raise ValueError(f"empty crop box {box}")
    left, top = (x1 + x2 - side) / 2.0, (y1 + y2 - side) / 2.0
    s = size / side
    # box edges are pixel edges: `left` maps to the output's left edge, index -0.5
    return np.array([[s, 0.0, -left * s - 0.5], [0.0, s, -top * s - 0.5]])


def warp(img: Image.Image, m: np.ndarray, size: int) -> Image.Image:
    """Resample `img` so that source point p lands on output point M @ p; size x size RGB.

    Pixels from outside the source are black.
    """
    inv = invert(m)
    # PIL asks, per output pixel centre (x+0.5, y+0.5), for the source continuous position;
    # in index coordinates that is inv @ (x, y) and its continuous position is +0.5.
    offset = inv[:, 2] + 0.5 - inv[:, :2] @ np.array([0.5, 0.5])
    coeffs = (inv[0, 0], inv[0, 1], offset[0], inv[1, 0], inv[1, 1], offset[1])
    return img.convert("RGB").transform(
        (size, size), Image.Transform.AFFINE, data=coeffs, resample=Image.Resampling.BILINEAR
    )
