"""Template, Umeyama fit and PIL warp, checked on exact synthetic inputs (no detector needed)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from preprocess import geometry


def _similarity(angle: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[scale * c, -scale * s, shift[0]], [scale * s, scale * c, shift[1]]])


def test_template_scales_arcface_with_size_and_margin():
    np.testing.assert_allclose(geometry.template(112, 0.0), geometry.ARCFACE_112)
    np.testing.assert_allclose(geometry.template(224, 0.0), 2 * geometry.ARCFACE_112)
    # margin m shrinks the template about the crop centre by 1 / (1 + 2m)
    t = geometry.template(112, 0.25)
    np.testing.assert_allclose(t - 56.0, (geometry.ARCFACE_112 - 56.0) / 1.5)
    with pytest.raises(ValueError, match="margin"):
        geometry.template(112, -0.1)


def test_umeyama_recovers_an_exact_similarity():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 500, size=(5, 2))
    true = _similarity(0.4, 0.37, (12.0, -30.0))
    m = geometry.similarity_transform(src, geometry.apply(true, src))
    np.testing.assert_allclose(m, true, atol=1e-9)


def test_umeyama_is_least_squares_and_never_reflects():
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 300, size=(5, 2))
    dst = geometry.template(112, 0.25)
    m = geometry.similarity_transform(src, dst)
    residual = ((geometry.apply(m, src) - dst) ** 2).sum()
    for _ in range(50):  # no nearby similarity fits better
        angle, log_s, dx, dy = rng.normal(0, [0.02, 0.02, 0.5, 0.5])
        a = _similarity(angle, np.exp(log_s), (dx, dy))
        nearby = np.vstack([a, [0, 0, 1]]) @ np.vstack([m, [0, 0, 1]])
        assert ((geometry.apply(nearby[:2], src) - dst) ** 2).sum() >= residual - 1e-9
    # mirrored landmarks (a face seen in a mirror) still give a rotation, not a reflection
    mirrored = src * [-1, 1]
    assert np.linalg.det(geometry.similarity_transform(mirrored, dst)[:, :2]) > 0


def _dot_image(points: np.ndarray, size: tuple[int, int], sigma: float = 2.0) -> Image.Image:
    """Black image with a smooth (Gaussian) white dot centred on each point: its sampled
    centroid is the point to within a few hundredths of a pixel."""
    ys, xs = np.mgrid[0 : size[1], 0 : size[0]].astype(np.float64)
    g = np.zeros((size[1], size[0]))
    for x, y in points:
        g += np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2))
    return Image.fromarray(np.repeat((255 * np.clip(g, 0, 1)).astype(np.uint8)[..., None], 3, axis=2))


def _centroids(img: Image.Image, near: np.ndarray, radius: int = 7) -> np.ndarray:
    g = np.asarray(img.convert("L"), dtype=np.float64)
    out = []
    for x, y in near:
        x0, y0 = int(round(x)) - radius, int(round(y)) - radius
        patch = g[y0 : y0 + 2 * radius + 1, x0 : x0 + 2 * radius + 1]
        ys, xs = np.mgrid[y0 : y0 + patch.shape[0], x0 : x0 + patch.shape[1]]
        out.append([(xs * patch).sum() / patch.sum(), (ys * patch).sum() / patch.sum()])
    return np.array(out)


@pytest.mark.parametrize("size", geometry.SIZES)
def test_warp_puts_source_points_on_the_template(size):
    """The pixel-centre convention: a source point p lands on M @ p, to a fraction of a pixel."""
    truth = _similarity(-0.3, 0.5 * size / 112, (0.0, 0.0))
    target = geometry.template(size, 0.25)
    src = geometry.apply(geometry.invert(truth), target) + [300.3, 260.6]
    m = geometry.similarity_transform(src, target)
    out = geometry.warp(_dot_image(src, (640, 480)), m, size)
    assert out.size == (size, size) and out.mode == "RGB"
    found = _centroids(out, geometry.apply(m, src))
    np.testing.assert_allclose(found, geometry.apply(m, src), atol=0.1)
    np.testing.assert_allclose(found, target, atol=0.1)


def test_box_crop_matrix_maps_box_edges_to_output_edges():
    m = geometry.box_crop_matrix((100.0, 50.0, 300.0, 200.0), 112)  # 200 x 150 -> square side 200
    # the square is centred on the box: x from 100 to 300, y from 25 to 225
    np.testing.assert_allclose(geometry.apply(m, [[100, 25], [300, 225]]), [[-0.5, -0.5], [111.5, 111.5]])
