"""RandAugment (timm's `rand_augment_transform`, Ada-DF's recipe) on uint8 batches [B, 3, S, S], on the
batch's device, with the same distributions as timm's per-image PIL version:

- per sample and layer, one op drawn uniformly from the config's op list (with replacement; weighted
  lists without, as timm), applied with probability p (0.5);
- its magnitude N(m, mstd) clipped to [0, mmax or 10] (uniform on [0, m] for mstd > 100), mapped to the
  op's argument by timm's level function, with a random sign for the signed ops (rotation, shear,
  translation, the "Increasing" enhancements);
- geometric ops resample bilinear or bicubic at random per call (timm's default `resample`), fill the
  uncovered area with `img_mean`.

Every op reproduces Pillow's arithmetic (libImaging): AutoContrast, Equalize, Posterize, Solarize,
SolarizeAdd and Invert are ImageOps' lookup tables; the enhancements blend in float32 and truncate as
ImagingBlend (Color's grey is PIL's fixed-point luma; Sharpness smooths with Pillow's 3x3 SMOOTH kernel,
borders kept): all bit for bit. The affine ops (Rotate, Shear, TranslateRel) sample at pixel centres
from float64 coordinates with Pillow's edge clamping, fill rule and bicubic kernel (a = -1), but
interpolate in float32 (Pillow: float64): a value within float32 rounding of an integer, as in flat
regions, can truncate one lower, so a few percent of their pixels differ by 1. Per op, both are checked
against timm's PIL op in tests/common/test_randaugment.py, and the random draws over many samples.

Pillow >= 11 refuses ImageOps.posterize(img, 0), which timm's Posterize asks for when the magnitude
falls below 2.5 (with m5 mstd0.5: 5 standard deviations, about 3 in 10^7 op calls; the per-image path
then fails): here 0 bits keeps none, a black image, as older Pillow did.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from common.augment import take_pixels

LEVEL_DENOM = 10.0  # timm's _LEVEL_DENOM: magnitudes are out of 10

# The affine ops: resampled (bilinear or bicubic), the uncovered area filled.
GEOMETRIC = {"Rotate", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel"}


def level_to_arg(name: str, level: torch.Tensor, negate: torch.Tensor, translate_pct: float = 0.45) -> torch.Tensor:
    """timm's LEVEL_TO_ARG[name] for a float64 vector of magnitudes, `negate` the per-sample sign draw
    (only the signed ops use it). Same float64 operations in the same order as timm's Python."""
    frac = level / LEVEL_DENOM
    sign = torch.where(negate, -1.0, 1.0).to(level)
    if name == "Rotate":
        return frac * 30.0 * sign
    if name in ("ShearX", "ShearY"):
        return frac * 0.3 * sign
    if name in ("TranslateXRel", "TranslateYRel"):
        return frac * translate_pct * sign
    if name in ("Color", "Contrast", "Brightness", "Sharpness"):
        return frac * 1.8 + 0.1
    if name.endswith("Increasing") and name[:-len("Increasing")] in ("Color", "Contrast", "Brightness", "Sharpness"):
        return (1.0 + frac * 0.9 * sign).clamp(min=0.1)
    if name == "Posterize":
        return torch.trunc(frac * 4)
    if name == "PosterizeIncreasing":
        return 4 - torch.trunc(frac * 4)
    if name == "PosterizeOriginal":
        return torch.trunc(frac * 4) + 4
    if name == "Solarize":
        return torch.trunc(frac * 256).clamp(max=256)
    if name == "SolarizeIncreasing":
        return 256 - torch.trunc(frac * 256).clamp(max=256)
    if name == "SolarizeAdd":
        return torch.trunc(frac * 110).clamp(max=128)
    if name in ("AutoContrast", "Equalize", "Invert"):
        return torch.zeros_like(level)
    raise ValueError(f"RandAugment op {name!r} has no batched version; valid: {', '.join(OPS)}")


# ---------------------------------------------------------------------------------------------- point ops

def apply_lut(x: torch.Tensor, lut: torch.Tensor) -> torch.Tensor:
    """x uint8 [n, c, h, w] through per-sample lookup tables lut [n, c or 1, 256] (uint8)."""
    n, c, h, w = x.shape
    return torch.gather(lut.expand(n, c, 256), 2, x.reshape(n, c, h * w).long()).view(n, c, h, w)


def _values(n: int, device: torch.device) -> torch.Tensor:
    return torch.arange(256, device=device).expand(n, 1, 256)


def invert(x: torch.Tensor, arg: torch.Tensor | None = None) -> torch.Tensor:
    return 255 - x


def posterize(x: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """ImageOps.posterize: keep the top `bits` bits (8 or more: unchanged, as timm)."""
    drop = (8 - bits.long()).clamp(min=0)[:, None, None]
    mask = ~((1 << drop) - 1)
    return apply_lut(x, (_values(len(x), x.device) & mask).to(torch.uint8))


def solarize(x: torch.Tensor, thresh: torch.Tensor) -> torch.Tensor:
    """ImageOps.solarize: values at or above the threshold inverted."""
    v = _values(len(x), x.device)
    return apply_lut(x, torch.where(v < thresh.long()[:, None, None], v, 255 - v).to(torch.uint8))


def solarize_add(x: torch.Tensor, add: torch.Tensor, thresh: int = 128) -> torch.Tensor:
    """timm's solarize_add: values below 128 raised by `add`, capped at 255."""
    v = _values(len(x), x.device)
    return apply_lut(x, torch.where(v < thresh, (v + add.long()[:, None, None]).clamp(max=255), v).to(torch.uint8))


def histograms(x: torch.Tensor) -> torch.Tensor:
    """Per sample and channel, the 256-bin histogram [n, c, 256] (int64)."""
    n, c, h, w = x.shape
    bins = x.reshape(n * c, h * w).long() + (torch.arange(n * c, device=x.device) * 256)[:, None]
    return torch.bincount(bins.flatten(), minlength=n * c * 256).view(n, c, 256)


def auto_contrast(x: torch.Tensor, arg: torch.Tensor | None = None) -> torch.Tensor:
    """ImageOps.autocontrast (cutoff 0): each channel stretched from [min, max] to [0, 255]."""
    n, c = x.shape[:2]
    flat = x.reshape(n, c, -1)
    lo, hi = flat.amin(2).double()[..., None], flat.amax(2).double()[..., None]
    # A tensor numerator: `255.0 / tensor` multiplies by a reciprocal, which rounds differently from Python.
    scale = torch.full_like(lo, 255.0) / (hi - lo).clamp(min=1)
    v = torch.arange(256, device=x.device, dtype=torch.float64)
    lut = torch.trunc(v * scale + (-lo * scale)).clamp(0, 255)
    lut = torch.where(hi > lo, lut, v)  # a flat channel stays as it is
    return apply_lut(x, lut.to(torch.uint8))


def equalize(x: torch.Tensor, arg: torch.Tensor | None = None) -> torch.Tensor:
    """ImageOps.equalize: per channel, the histogram-equalising lookup table of PIL (step from all but
    the highest occupied bin; flat channels and step 0 unchanged; values past 255 clipped as Image.point)."""
    hist = histograms(x)
    occupied = hist > 0
    last = 255 - occupied.flip(-1).long().argmax(-1, keepdim=True)  # highest occupied bin
    step = (hist.sum(-1, keepdim=True) - hist.gather(-1, last)) // 255
    below = hist.cumsum(-1) - hist  # pixels in lower bins
    lut = (step // 2 + below) // step.clamp(min=1)
    keep = (occupied.sum(-1, keepdim=True) <= 1) | (step == 0)
    lut = torch.where(keep, torch.arange(256, device=x.device), lut).clamp(0, 255)
    return apply_lut(x, lut.to(torch.uint8))


# ------------------------------------------------------------------------------------------- enhancements

def blend(degenerate: torch.Tensor, x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Image.blend(degenerate, x, factor) as ImagingBlend: float32 d + f * (x - d), clipped, truncated."""
    f = factor.to(device=x.device, dtype=torch.float32)[:, None, None, None]
    d = degenerate.to(torch.int32)
    out = d.float() + f * (x.to(torch.int32) - d).float()
    return out.clamp_(0, 255).to(torch.uint8)


def grey(x: torch.Tensor) -> torch.Tensor:
    """PIL's RGB -> L conversion (ITU-R 601-2 luma, 16-bit fixed point), [n, 1, h, w] int32."""
    r, g, b = x.to(torch.int32).unbind(1)
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16)[:, None]


def color(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return blend(grey(x).expand_as(x), x, factor)


def contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """ImageEnhance.Contrast: blend with the grey image's rounded mean."""
    lum = grey(x)
    mean = torch.trunc(lum.flatten(1).sum(1).double() / lum[0].numel() + 0.5)
    return blend(mean[:, None, None, None].expand_as(x), x, factor)


def brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return blend(torch.zeros_like(x), x, factor)


def smooth(x: torch.Tensor) -> torch.Tensor:
    """ImageFilter.SMOOTH as Pillow's ImagingFilter3x3: kernel [1 1 1; 1 5 1; 1 1 1] / 13 in float32,
    summed row by row (the row below first) onto 0.5, truncated; the one-pixel border unchanged."""
    k1 = torch.tensor(1.0, dtype=torch.float32) / 13
    k5 = torch.tensor(5.0, dtype=torch.float32) / 13
    f = x.float()
    left, mid, right = f[..., :, :-2], f[..., :, 1:-1], f[..., :, 2:]
    outer = left * k1 + mid * k1 + right * k1  # rows above and below
    centre = left * k1 + mid * k5 + right * k1
    ss = torch.full_like(centre[..., 1:-1, :], 0.5)
    ss = ss + outer[..., 2:, :]
    ss = ss + centre[..., 1:-1, :]
    ss = ss + outer[..., :-2, :]
    out = x.clone()
    out[..., 1:-1, 1:-1] = ss.clamp_(0, 255).to(torch.uint8)
    return out


def sharpness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return blend(smooth(x), x, factor)


# -------------------------------------------------------------------------------------------- geometry

def _affine_matrices(name: str, args: list[float], h: int, w: int) -> list[list[float]]:
    """The (a, b, c, d, e, f) PIL's Image.transform gets from timm's op, computed in Python floats exactly
    as timm and Image.rotate do (source x = a x' + b y' + c, y = d x' + e y' + f)."""
    if name == "ShearX":
        return [[1.0, a, 0.0, 0.0, 1.0, 0.0] for a in args]
    if name == "ShearY":
        return [[1.0, 0.0, 0.0, a, 1.0, 0.0] for a in args]
    if name == "TranslateXRel":
        return [[1.0, 0.0, a * w, 0.0, 1.0, 0.0] for a in args]
    if name == "TranslateYRel":
        return [[1.0, 0.0, 0.0, 0.0, 1.0, a * h] for a in args]
    out = []
    for degrees in args:  # Image.rotate about the centre; angle 0 is a copy, which the identity matrix gives
        angle = -math.radians(degrees % 360.0)
        m = [round(math.cos(angle), 15), round(math.sin(angle), 15), 0.0,
             round(-math.sin(angle), 15), round(math.cos(angle), 15), 0.0]
        cx, cy = w / 2, h / 2
        m[2] = m[0] * -cx + m[1] * -cy + m[2] + cx
        m[5] = m[3] * -cx + m[4] * -cy + m[5] + cy
        out.append(m)
    return out


def cubic_weights(d: torch.Tensor) -> list[torch.Tensor]:
    """The weights of the four taps at offsets -1, 0, 1, 2 for fraction d: Pillow's bicubic kernel
    (a = -1, its BICUBIC macro expanded)."""
    d2 = d * d
    d3 = d2 * d
    return [-d + 2 * d2 - d3, 1 - 2 * d2 + d3, d + d2 - d3, d3 - d2]


def affine(x: torch.Tensor, matrices: torch.Tensor, bicubic: bool, fill: tuple[int, ...]) -> torch.Tensor:
    """Image.transform(AFFINE, matrix, BILINEAR or BICUBIC, fillcolor=fill) for each image of x uint8
    [n, c, h, w] and its float64 matrix [n, 6], as Pillow computes it: sample at pixel centres; a source
    point outside the image is `fill`; inside, taps beyond the edge repeat the edge (XCLIP/YCLIP); the
    bicubic kernel has a = -1; the result is clipped and truncated to uint8.

    Source coordinates are float64 as in Pillow, so every pixel reads the same taps; the interpolation
    is float32 (Pillow: float64), twice as fast on a CPU and the precision GPUs are fast at, so a value
    that lands within float32 rounding of an integer can truncate one lower: some pixels differ by 1."""
    n, c, h, w = x.shape
    dev = x.device
    m = matrices.to(device=dev, dtype=torch.float64)[:, :, None, None]
    xs = (torch.arange(w, device=dev, dtype=torch.float64) + 0.5)[None, None, :]
    ys = (torch.arange(h, device=dev, dtype=torch.float64) + 0.5)[None, :, None]
    sx = m[:, 0] * xs + m[:, 1] * ys + m[:, 2]  # [n, h, w], Pillow's affine_transform
    sy = m[:, 3] * xs + m[:, 4] * ys + m[:, 5]
    outside = (sx < 0) | (sx >= w) | (sy < 0) | (sy >= h)
    sx, sy = sx - 0.5, sy - 0.5
    x0, y0 = torch.floor(sx), torch.floor(sy)
    dx, dy = (sx - x0)[:, None].float(), (sy - y0)[:, None].float()  # [n, 1, h, w]: over the channels
    x0, y0 = x0.long(), y0.long()
    taps = range(-1, 3) if bicubic else range(0, 2)
    cols = [(x0 + i).clamp_(0, w - 1) for i in taps]

    def tap(j: int, col: torch.Tensor) -> torch.Tensor:  # [n, c, h, w] float32
        return take_pixels(x, (y0 + j).clamp_(0, h - 1).mul_(w).add_(col)).float()

    if bicubic:
        wx, wy = cubic_weights(dx), cubic_weights(dy)
        v = torch.zeros((n, c, h, w), device=dev)
        for j, wj in zip(taps, wy):
            v += wj * sum(wi * tap(j, col) for wi, col in zip(wx, cols))
        v.clamp_(0, 255)
    else:
        (a0, a1), (b0, b1) = [tap(0, col) for col in cols], [tap(1, col) for col in cols]
        v1, v2 = a0 + (a1 - a0) * dx, b0 + (b1 - b0) * dx
        v = v1 + (v2 - v1) * dy
    fill_pixel = torch.tensor(fill, dtype=torch.uint8, device=dev).view(1, -1, 1, 1)
    return torch.where(outside[:, None], fill_pixel, v.to(torch.uint8))


# ------------------------------------------------------------------------------------------------ the op set

POINT_OPS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "AutoContrast": auto_contrast, "Equalize": equalize, "Invert": invert,
    "Posterize": posterize, "PosterizeIncreasing": posterize, "PosterizeOriginal": posterize,
    "Solarize": solarize, "SolarizeIncreasing": solarize, "SolarizeAdd": solarize_add,
    "Color": color, "ColorIncreasing": color, "Contrast": contrast, "ContrastIncreasing": contrast,
    "Brightness": brightness, "BrightnessIncreasing": brightness,
    "Sharpness": sharpness, "SharpnessIncreasing": sharpness,
}
OPS = tuple(POINT_OPS) + tuple(sorted(GEOMETRIC))


def apply_op(name: str, x: torch.Tensor, arg: torch.Tensor, bicubic: torch.Tensor,
             fill: tuple[int, ...]) -> torch.Tensor:
    """timm's op `name` with per-sample argument `arg` (float64, from level_to_arg) on uint8 x [n, 3, h, w];
    `bicubic` [n] chooses each geometric op's resampler (False: bilinear)."""
    if name in POINT_OPS:
        return POINT_OPS[name](x, arg)
    if name not in GEOMETRIC:
        raise ValueError(f"RandAugment op {name!r} has no batched version; valid: {', '.join(OPS)}")
    h, w = x.shape[-2:]
    matrices = torch.tensor(_affine_matrices(name, arg.tolist(), h, w), dtype=torch.float64)
    out = torch.empty_like(x)
    for cubic in (False, True):
        pick = (bicubic == cubic).nonzero().flatten()
        if len(pick):
            out[pick] = affine(x[pick], matrices[pick.cpu()], cubic, fill)
    return out


@dataclass
class BatchRandAugment:
    """timm's RandAugment(rand_augment_ops(...), num_layers, choice_weights) for uint8 batches."""

    ops: tuple[str, ...]
    magnitude: float
    num_layers: int = 2
    prob: float = 0.5
    magnitude_std: float = 0.0
    magnitude_max: float | None = None
    fill: tuple[int, int, int] = (128, 128, 128)
    translate_pct: float = 0.45
    choice_weights: tuple[float, ...] | None = None
    interpolation: str = "random"  # "random" (timm's default: bilinear or bicubic per call), "bilinear", "bicubic"

    def __post_init__(self) -> None:
        unknown = [o for o in self.ops if o not in OPS]
        if unknown:
            raise ValueError(f"RandAugment ops {unknown} have no batched version; valid: {', '.join(OPS)}")
        if self.interpolation not in ("random", "bilinear", "bicubic"):
            raise ValueError(f"interpolation {self.interpolation!r} unknown; valid: random, bilinear, bicubic")

    def draw(self, n: int, device: torch.device | None = None) -> dict[str, torch.Tensor]:
        """The random draws for n samples, each [n, num_layers]: op index, applied, magnitude (clipped),
        sign, resampler (True: bicubic). Every draw is made for every layer of every sample, whether or
        not the op uses it, so no draw depends on another."""
        shape, k = (n, self.num_layers), len(self.ops)
        if self.choice_weights is None:  # uniform, with replacement (numpy's choice in timm)
            op = torch.randint(0, k, shape, device=device)
        else:  # weighted: timm takes the layers' ops without replacement
            weights = torch.tensor(self.choice_weights, device=device, dtype=torch.float64)
            op = torch.multinomial(weights.expand(n, k), self.num_layers, replacement=False)
        if self.magnitude_std == float("inf"):  # timm: mstd > 100 means uniform on [0, m]
            mag = torch.rand(shape, device=device, dtype=torch.float64) * self.magnitude
        elif self.magnitude_std > 0:
            mag = torch.randn(shape, device=device, dtype=torch.float64) * self.magnitude_std + self.magnitude
        else:
            mag = torch.full(shape, float(self.magnitude), device=device, dtype=torch.float64)
        mag = mag.clamp(0.0, float(self.magnitude_max or LEVEL_DENOM))
        if self.interpolation == "random":
            bicubic = torch.rand(shape, device=device) < 0.5
        else:
            bicubic = torch.full(shape, self.interpolation == "bicubic", device=device)
        return {"op": op, "applied": torch.rand(shape, device=device) < self.prob, "magnitude": mag,
                "negate": torch.rand(shape, device=device) > 0.5, "bicubic": bicubic}

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """The augmented batch (uint8, contiguous NCHW); the caller's batch is never written to."""
        x = images.contiguous()
        draws = self.draw(len(x), x.device)
        for j in range(self.num_layers):
            x = self.layer(x, {key: value[:, j] for key, value in draws.items()})
        return x

    def layer(self, x: torch.Tensor, draw: dict[str, torch.Tensor]) -> torch.Tensor:
        """One layer: each sample's drawn op, where it was drawn to apply, on the samples that drew it."""
        if not bool(draw["applied"].any()):
            return x
        out = x.clone()
        for k, name in enumerate(self.ops):
            pick = ((draw["op"] == k) & draw["applied"]).nonzero().flatten()
            if not len(pick):
                continue
            arg = level_to_arg(name, draw["magnitude"][pick], draw["negate"][pick], self.translate_pct)
            out[pick] = apply_op(name, x[pick], arg, draw["bicubic"][pick], self.fill)
        return out


def from_timm(config_str: str, img_mean: tuple[int, int, int]) -> BatchRandAugment:
    """The batched twin of timm's rand_augment_transform(config_str, {"img_mean": img_mean}): timm parses
    the string (so every option means what it means there), its ops' settings are read back."""
    from timm.data.auto_augment import rand_augment_transform

    ra = rand_augment_transform(config_str, {"img_mean": tuple(img_mean)})
    first = ra.ops[0]
    resample = first.kwargs["resample"]
    interpolation = "random" if isinstance(resample, (list, tuple)) else \
        {2: "bilinear", 3: "bicubic"}.get(int(resample), None)
    if interpolation is None:
        raise ValueError(f"RandAugment interpolation {resample!r} has no batched version; valid: bilinear, bicubic")
    weights = None if ra.choice_weights is None else tuple(float(w) for w in ra.choice_weights)
    return BatchRandAugment(ops=tuple(op.name for op in ra.ops), magnitude=float(first.magnitude),
                            num_layers=int(ra.num_layers), prob=float(first.prob),
                            magnitude_std=float(first.magnitude_std),
                            magnitude_max=first.magnitude_max, fill=tuple(int(v) for v in first.kwargs["fillcolor"]),
                            translate_pct=float(first.hparams.get("translate_pct", 0.45)),
                            choice_weights=weights, interpolation=interpolation)


@dataclass
class WithRandAugment:
    """The per-image order of common/transforms.train_transform for batches: flip and RandomApply
    (`geometry`, a BatchAugment that leaves 0..255 values: mean 0, std 1/255, no erasing), RandAugment on
    uint8, then `finish` (a BatchAugment for ToTensor + Normalize + RandomErasing only)."""

    geometry: Callable[[torch.Tensor], torch.Tensor] | None
    randaugment: BatchRandAugment
    finish: Callable[[torch.Tensor], torch.Tensor]

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = images
        if self.geometry is not None:
            x = self.geometry(images).round_().clamp_(0, 255).to(torch.uint8)
        return self.finish(self.randaugment(x))
