"""`synthetic`: procedural cartoon faces whose expression is carried by facial geometry.

Needs no download, so it is the default dataset of every command and test. It is written
on disk in the RAF-DB layout (`EmoLabel/list_patition_label.txt` with `train_*`/`test_*`
names and labels 1..7, `Image/aligned/*_aligned.jpg`) and read by the RAF-DB loader, so a
synthetic run goes through the same code path as a real one.

Classes, in label order (RAF-DB's): 0 surprise, 1 fear, 2 disgust, 3 happiness,
4 sadness, 5 anger, 6 neutral. Frequencies follow RAF-DB (1619, 355, 877, 5957, 2460, 867,
3204 of 15339: happiness 39 %, fear 2.3 %), allocated exactly by largest remainder, so
accuracy and balanced accuracy differ.

Geometry per class (class means in face units, R = face half-height; every sample adds
Gaussian jitter to each parameter, see JITTER, so neighbouring classes overlap):

    class      mouth curve  opening  width  brow tilt  brow height  eye opening  asymmetry
    surprise        0.00     0.40    0.20     +0.06       0.40         0.130        0
    fear           -0.10     0.16    0.38     +0.20       0.33         0.120        0
    disgust        -0.12     0.04    0.28     -0.10       0.16         0.035        0.18
    happiness      +0.32     0.12    0.40      0.00       0.25         0.050        0
    sadness        -0.26     0.00    0.28     +0.22       0.23         0.050        0
    anger          -0.08     0.02    0.24     -0.26       0.14         0.085        0
    neutral         0.00     0.00    0.30      0.00       0.25         0.080        0
    jitter (sd)     0.020    0.016   0.016     0.016      0.014        0.007        0.012

mouth curve: height of the corners above the centre (+ smile, - frown); opening: gap
between the lips at the centre; width: half-width; brow tilt: inner end above the outer end
(+ worried, - frowning); brow height: brow above the eye centre; eye opening: eye
half-height; asymmetry: one mouth corner raised (side chosen at random).

Nuisance, drawn per sample: face position (centre within +-8 % of the image), scale
(face half-height 34-42 % of the image), in-plane rotation (+-8 degrees), face shape
(width, eye spacing, feature heights), skin tone (six tones from light to dark, jittered;
brows and eyes are low-contrast on dark skin), hair (colour, shape, or none), background
colour and clutter (1-4 random ellipses, boxes and lines), a linear lighting gradient in a
random direction plus overall brightness, Gaussian luminance noise (sd 2-7 grey levels),
and with probability 0.1 an occluding patch (ellipse or box) over part of the face, which
may hide the mouth, an eye or a brow.

Label noise: a fraction `label_noise` of the samples (exactly round(n * label_noise)) gets
a different label drawn uniformly; the image still shows the original class. Their ids
are listed in `synthetic.json` next to the label file.

Deterministic: each sample is drawn from its own numpy Generator seeded by (seed, index),
images are drawn at twice the size and box-downsampled, and saved as JPEG with fixed
settings, so the same arguments give the same bytes (with the same Pillow build). Nothing
depends on time or hash(). Generating the default 3000 images at 112 px takes about 12 s
of CPU time on one core.

Difficulty (n=3000, seed 0, 1800 train / 600 validation images, AdamW 1e-3, cosine, batch 32,
horizontal flips only; the class geometry above was doubled from a first version on which DAN
from scratch stayed at the majority rate): validation accuracy per epoch, majority rate 0.37,
- a 4-stage CNN (tests/fixtures/models/tiny) at 32 px: 0.55, 0.66, 0.78, 0.79, 0.80, 0.81;
- torchvision ResNet-18 from scratch at 32 px: 0.48, 0.64, 0.74, 0.78;
- DAN from scratch at 64 px (its quick profile): 0.44, 0.58, 0.79 on one split, but some seeds stay
  at chance for the first epochs (models/dan/config.yaml).
Learnable in a few epochs, not solved in one.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from common.datasets import rafdb
from common.datasets.base import Pool, repo_root
from common.errors import ConfigError

CLASS_NAMES = list(rafdb.CLASS_NAMES)
FOLDER = None  # lives in the cache, not under the data root
LABEL_FILE = rafdb.LABEL_FILE
LAYOUT = "(generated) " + rafdb.LAYOUT
# The cache key carries a digest of this file, so a cache written by another version of
# the generator is never read (a forgotten version bump cannot serve stale images).
GENERATOR_DIGEST = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:10]
DEFAULTS = {"n": 3000, "size": 112, "seed": 0, "label_noise": 0.03}
RAFDB_COUNTS = (1619, 355, 877, 5957, 2460, 867, 3204)
TRAIN_FRACTION = 0.8  # share of train_* names, like RAF-DB's official split
JPEG_QUALITY = 92

# Columns: curve, opening, width, brow tilt, brow height, eye opening, asymmetry.
PARAMS = ("curve", "opening", "width", "tilt", "brow", "eye", "asym")
CLASS_MEANS = np.array([
    [0.00, 0.40, 0.20, 0.06, 0.40, 0.130, 0.00],   # surprise
    [-0.10, 0.16, 0.38, 0.20, 0.33, 0.120, 0.00],  # fear
    [-0.12, 0.04, 0.28, -0.10, 0.16, 0.035, 0.18],  # disgust
    [0.32, 0.12, 0.40, 0.00, 0.25, 0.050, 0.00],   # happiness
    [-0.26, 0.00, 0.28, 0.22, 0.23, 0.050, 0.00],  # sadness
    [-0.08, 0.02, 0.24, -0.26, 0.14, 0.085, 0.00],  # anger
    [0.00, 0.00, 0.30, 0.00, 0.25, 0.080, 0.00],   # neutral
])
JITTER = np.array([0.02, 0.016, 0.016, 0.016, 0.014, 0.007, 0.012])
LOW = np.array([-0.40, 0.0, 0.15, -0.36, 0.08, 0.02, 0.0])
HIGH = np.array([0.44, 0.50, 0.48, 0.32, 0.48, 0.16, 0.28])

SKIN = np.array([[255, 224, 196], [241, 194, 160], [224, 172, 125], [198, 134, 66],
                 [141, 85, 36], [96, 60, 35]], dtype=float)
HAIR = np.array([[20, 15, 10], [70, 45, 25], [140, 95, 50], [215, 185, 120],
                 [160, 160, 160], [120, 40, 20]], dtype=float)


def class_counts(n: int) -> list[int]:
    """RAF-DB's class shares scaled to n by largest remainder (sums to n exactly)."""
    share = np.asarray(RAFDB_COUNTS, dtype=float) / sum(RAFDB_COUNTS) * n
    counts = np.floor(share).astype(int)
    order = np.argsort(-(share - counts), kind="stable")
    counts[order[: n - counts.sum()]] += 1
    return counts.tolist()


def sample_names(n: int) -> list[str]:
    """RAF-DB style names: train_00001.jpg ... then test_0001.jpg ..."""
    n_train = round(n * TRAIN_FRACTION)
    width = max(5, len(str(n_train)))
    test_width = max(4, len(str(n - n_train)))
    return ([f"train_{i + 1:0{width}d}.jpg" for i in range(n_train)]
            + [f"test_{i + 1:0{test_width}d}.jpg" for i in range(n - n_train)])


def draw_labels(n: int, seed: int, label_noise: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(true class per sample, written label per sample, indices whose label was flipped)."""
    rng = np.random.default_rng([seed, 0])
    true = rng.permutation(np.repeat(np.arange(len(CLASS_NAMES)), class_counts(n)))
    flipped = np.sort(rng.choice(n, size=round(n * label_noise), replace=False))
    noisy = true.copy()
    noisy[flipped] = (true[flipped] + rng.integers(1, len(CLASS_NAMES), size=flipped.size)) % len(CLASS_NAMES)
    return true, noisy, flipped


def render(cls: int, size: int, rng: np.random.Generator) -> Image.Image:
    """One face of class `cls` at size x size px, all randomness from `rng`."""
    s = 2 * size  # drawn at twice the size, box-downsampled: cheap anti-aliasing
    img = Image.new("RGB", (s, s), _color(rng.uniform(40, 220, 3)))
    draw = ImageDraw.Draw(img)
    _clutter(draw, s, rng)

    p = dict(zip(PARAMS, np.clip(CLASS_MEANS[cls] + JITTER * rng.standard_normal(len(PARAMS)), LOW, HIGH)))
    radius = s * rng.uniform(0.34, 0.42)
    centre = s * (0.5 + rng.uniform(-0.08, 0.08, 2))
    angle = np.deg2rad(rng.uniform(-8, 8))
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])

    def to_px(pts: np.ndarray) -> list[float]:
        return ((np.asarray(pts) @ rot.T) * radius + centre).ravel().tolist()  # PIL takes x0, y0, x1, ...

    skin = SKIN[rng.integers(len(SKIN))] * rng.uniform(0.9, 1.08) + rng.normal(0, 6, 3)
    hair = HAIR[rng.integers(len(HAIR))] + rng.normal(0, 10, 3)
    face_w = rng.uniform(0.72, 0.86)
    if rng.random() < 0.8:  # hair: a larger ellipse behind the top of the face
        draw.polygon(to_px(_ellipse(0, rng.uniform(-0.3, -0.15), face_w * rng.uniform(1.05, 1.2),
                                    rng.uniform(0.8, 1.0))), fill=_color(hair))
    draw.polygon(to_px(_ellipse(0, 0, face_w, 1.0)), fill=_color(skin))

    dark = _color(skin * 0.45)
    line = max(1, round(radius * 0.11))
    eye_x, eye_y = rng.uniform(0.28, 0.36), rng.uniform(-0.25, -0.15)
    mouth_y = rng.uniform(0.42, 0.55)
    for side in (-1, 1):
        ex = side * eye_x
        draw.polygon(to_px(_ellipse(ex, eye_y, 0.13, p["eye"])), fill=(245, 245, 240), outline=dark)
        iris = min(0.06, p["eye"])
        draw.polygon(to_px(_ellipse(ex, eye_y, 0.055, iris)), fill=_color(hair * 0.5 + 20))
        inner_y = eye_y - p["brow"] - p["tilt"] / 2
        outer_y = eye_y - p["brow"] + p["tilt"] / 2
        brow = np.array([[ex + side * 0.15, outer_y], [ex - side * 0.12, inner_y]])
        draw.line(to_px(brow), fill=_color(hair * 0.6), width=round(radius * 0.15))
    draw.line(to_px(np.array([[0.0, -0.05], [0.03, 0.2], [-0.04, 0.22]])), fill=dark, width=line)
    _mouth(draw, to_px, p, mouth_y, rng, line)

    if rng.random() < 0.1:
        _occlude(draw, to_px, rng)
    img = img.reduce(2)
    return _light_and_noise(np.array(img, dtype=np.float32), rng)


def _mouth(draw: ImageDraw.ImageDraw, to_px, p: dict, y: float, rng: np.random.Generator,
           line: int) -> None:
    t = np.linspace(-1, 1, 17)
    x = t * p["width"]
    tilt = p["asym"] * rng.choice([-1, 1]) * t / 2  # one corner up, the other down
    base = y - p["curve"] * t ** 2 - tilt
    upper = np.stack([x, base - p["opening"] / 2 * (1 - t ** 2)], 1)
    lower = np.stack([x, base + p["opening"] / 2 * (1 - t ** 2)], 1)
    lip = (120, 35, 45)
    if p["opening"] > 0.015:
        draw.polygon(to_px(np.concatenate([upper, lower[::-1]])), fill=(60, 15, 20))
    draw.line(to_px(upper), fill=lip, width=line, joint="curve")
    draw.line(to_px(lower), fill=lip, width=line, joint="curve")


def _occlude(draw: ImageDraw.ImageDraw, to_px, rng: np.random.Generator) -> None:
    """A hand, scarf or sign over part of the face (may hide the mouth, eyes or brows)."""
    cx, cy = rng.uniform(-0.6, 0.6), rng.uniform(-0.6, 0.8)
    hw, hh = rng.uniform(0.15, 0.45), rng.uniform(0.12, 0.35)
    shape = _ellipse(cx, cy, hw, hh) if rng.random() < 0.5 else np.array(
        [[cx - hw, cy - hh], [cx + hw, cy - hh], [cx + hw, cy + hh], [cx - hw, cy + hh]])
    draw.polygon(to_px(shape), fill=_color(rng.uniform(0, 255, 3)))


def _clutter(draw: ImageDraw.ImageDraw, s: int, rng: np.random.Generator) -> None:
    for _ in range(rng.integers(1, 5)):
        x0, y0 = rng.uniform(-0.1, 1.0, 2) * s
        w, h = rng.uniform(0.05, 0.3, 2) * s
        color = _color(rng.uniform(0, 255, 3))
        kind = rng.integers(3)
        if kind == 0:
            draw.ellipse([x0, y0, x0 + w, y0 + h], fill=color)
        elif kind == 1:
            draw.rectangle([x0, y0, x0 + w, y0 + h], fill=color)
        else:
            draw.line([x0, y0, x0 + w, y0 + h], fill=color, width=int(rng.integers(2, 8)))


def _light_and_noise(a: np.ndarray, rng: np.random.Generator) -> Image.Image:
    h, w = a.shape[:2]
    yy, xx = _grid(h, w)
    theta = rng.uniform(0, 2 * math.pi)
    gain = rng.uniform(0.75, 1.15) + rng.uniform(0.2, 0.8) * (math.cos(theta) * xx + math.sin(theta) * yy)
    a *= gain[..., None]
    # Sensor-like noise on luminance only: a third of the draws of per-channel noise.
    a += (rng.standard_normal((h, w), dtype=np.float32) * np.float32(rng.uniform(2, 7)))[..., None]
    np.clip(a, 0, 255, out=a)
    return Image.fromarray(np.rint(a).astype(np.uint8))


@lru_cache(maxsize=4)
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates scaled to [-0.5, 0.5), float32, shared by all samples of a size."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) / np.float32(max(h, w)) - np.float32(0.5)
    return yy, xx


_CIRCLE = np.stack([np.cos(np.linspace(0, 2 * np.pi, 28, endpoint=False)),
                    np.sin(np.linspace(0, 2 * np.pi, 28, endpoint=False))], 1)


def _ellipse(cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    return _CIRCLE * (rx, ry) + (cx, cy)


def _color(rgb: np.ndarray) -> tuple[int, ...]:
    return tuple(np.clip(np.rint(rgb), 0, 255).astype(int).tolist())


def generate(out_dir: Path, n: int = 3000, size: int = 112, seed: int = 0,
             label_noise: float = 0.03) -> Path:
    """Write n synthetic faces in the RAF-DB layout under out_dir; returns out_dir."""
    n, size, seed, label_noise = _validate(n, size, seed, label_noise)
    out_dir = Path(out_dir)
    image_dir = out_dir / rafdb.IMAGE_FOLDER
    image_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / LABEL_FILE).parent.mkdir(parents=True, exist_ok=True)
    true, noisy, flipped = draw_labels(n, seed, label_noise)
    names = sample_names(n)
    for i, name in enumerate(names):
        img = render(int(true[i]), size, np.random.default_rng([seed, 1, i]))
        img.save(image_dir / rafdb.image_filename(name), format="JPEG", quality=JPEG_QUALITY,
                 optimize=False, progressive=False, subsampling=0)
    with open(out_dir / LABEL_FILE, "w", encoding="utf-8", newline="\n") as f:
        f.writelines(f"{name} {label + 1}\n" for name, label in zip(names, noisy))
    meta = {"generator_digest": GENERATOR_DIGEST, "n": n, "size": size, "seed": seed,
            "label_noise": label_noise, "class_names": CLASS_NAMES,
            "class_counts_true": np.bincount(true, minlength=len(CLASS_NAMES)).tolist(),
            "flipped_ids": [names[i] for i in flipped]}
    (out_dir / "synthetic.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n",
                                            encoding="utf-8")
    return out_dir


def _validate(n, size, seed, label_noise) -> tuple[int, int, int, float]:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ConfigError(f"synthetic n must be a positive integer, got {n!r}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 16:
        raise ConfigError(f"synthetic size must be an integer >= 16, got {size!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"synthetic seed must be a non-negative integer, got {seed!r}")
    if not isinstance(label_noise, (int, float)) or not 0 <= label_noise < 1:
        raise ConfigError(f"synthetic label_noise must be in [0, 1), got {label_noise!r}")
    return int(n), int(size), int(seed), float(label_noise)


def resolve_params(params: dict | None) -> dict:
    """DEFAULTS updated by `params`; an unknown key is an error naming the valid ones."""
    params = dict(params or {})
    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown synthetic parameter(s) {unknown}; valid: {sorted(DEFAULTS)}")
    merged = {**DEFAULTS, **params}
    n, size, seed, noise = _validate(merged["n"], merged["size"], merged["seed"], merged["label_noise"])
    return {"n": n, "size": size, "seed": seed, "label_noise": noise}


def cache_dir(params: dict | None = None) -> Path:
    """Where a parameter set is cached: $FER_CACHE_DIR/synthetic/<key>, else <repo>/.cache/synthetic/<key>.

    key = <n>-<size>-<seed>-<label_noise>-<GENERATOR_DIGEST>."""
    p = resolve_params(params)
    base = Path(os.environ["FER_CACHE_DIR"]) if os.environ.get("FER_CACHE_DIR") else repo_root() / ".cache"
    key = f"{p['n']}-{p['size']}-{p['seed']}-{p['label_noise']:g}-{GENERATOR_DIGEST}"
    return base / "synthetic" / key


def ensure(params: dict | None = None) -> Path:
    """The cached dataset folder for `params`, generated first if absent.

    Generation goes to a private temporary folder that is renamed into place when complete,
    so a reader never sees a half-written dataset; when two processes race, one rename wins
    and the other discards its copy and reads the winner's (identical) files."""
    p = resolve_params(params)
    final = cache_dir(p)
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        generate(tmp, **p)
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache is shared like any folder
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def load(params: dict | None = None, exclude_missing: bool = False) -> Pool:
    folder = ensure(params)
    return rafdb.load(folder, exclude_missing, name="synthetic", layout=LAYOUT)
