"""IR-50, the ArcFace "improved residual" ResNet-50 trained on MS-Celeb (ir50.pth), first three stages.

POSTER and POSTER++ build only stages 1-3 (21 units, [B,256,14,14] at 112 px) but keep the
ArcFace embedding head `output_layer` as a module, so the published file loads by name; neither
calls it. POSTER names the units `body.0`..`body.20`; POSTER++ splits them into `body1` (3 units),
`body2` (4) and `body3` (14) because it reads all three stage outputs. `IR50(split=...)` builds
either layout and `remap_key` maps a published file in either layout onto it. Without that remap
POSTER++ upstream loads only the stem and head (19 of 304 tensors) and trains a random backbone.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from common.adapter import LoadReport
from common.backbones.loading import fill_bn_counters
from common.checkpoint import load_into, load_state_file

# (in channels, out channels, units) of the stages both models build; the 4th stage of the full
# IR-50 (256 -> 512, 3 units) is not built, so its keys in ir50.pth are reported as unused.
STAGES = ((64, 64, 3), (64, 128, 4), (128, 256, 14))
STAGE_START = (0, 3, 7, 21)  # flat index of each stage's first unit; last entry = units built
INPUT_SIZE = 112  # the network resizes every input to this (nearest), as upstream does


class BottleneckIR(nn.Module):
    """Pre-activation residual unit; the stride sits on the second 3x3 conv, as in ArcFace's IR."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        if in_ch == out_ch:
            # A 1x1 max-pool is a parameter-free strided identity.
            self.shortcut_layer: nn.Module = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False),
                                                nn.BatchNorm2d(out_ch))
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(in_ch),
            nn.Conv2d(in_ch, out_ch, 3, 1, 1, bias=False),
            nn.PReLU(out_ch),
            nn.Conv2d(out_ch, out_ch, 3, stride, 1, bias=False),
            nn.BatchNorm2d(out_ch),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


def _stage(in_ch: int, out_ch: int, units: int) -> list[BottleneckIR]:
    return [BottleneckIR(in_ch, out_ch, 2)] + [BottleneckIR(out_ch, out_ch, 1) for _ in range(units - 1)]


class IR50(nn.Module):
    """Stages 1-3 of IR-50. forward(x) -> the three stage outputs at 112 px input:
    [B,64,56,56], [B,128,28,28], [B,256,14,14]. `split` picks the key layout (see module doc)."""

    def __init__(self, split: bool = False) -> None:
        super().__init__()
        self.split = split
        self.input_layer = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64))
        self.output_layer = nn.Sequential(nn.BatchNorm2d(512), nn.Dropout(0.0), nn.Flatten(),
                                          nn.Linear(512 * 7 * 7, 512), nn.BatchNorm1d(512))
        stages = [_stage(*s) for s in STAGES]
        if split:
            self.body1 = nn.Sequential(*stages[0])
            self.body2 = nn.Sequential(*stages[1])
            self.body3 = nn.Sequential(*stages[2])
        else:
            self.body = nn.Sequential(*(u for units in stages for u in units))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # Upstream resizes with F.interpolate's default (nearest): 224 px inputs are subsampled.
        x = self.input_layer(F.interpolate(x, size=INPUT_SIZE))
        outs = []
        if self.split:
            for stage in (self.body1, self.body2, self.body3):
                x = stage(x)
                outs.append(x)
        else:
            for i, unit in enumerate(self.body):
                x = unit(x)
                if i + 1 in STAGE_START[1:]:
                    outs.append(x)
        return outs[0], outs[1], outs[2]


_BODY_KEY = re.compile(r"^body(\d*)\.(\d+)\.(.+)$")


def remap_key(key: str, split: bool) -> str | None:
    """Map a key of a published IR-50 file (`body.N.*` or `body1/2/3.i.*`) to IR50(split)'s layout.

    Stem and head keys are the same in both layouts. Returns None for units this IR50 does not
    build (the 4th stage, `body.21`..`body.23` of a full IR-50) or that cannot exist.
    """
    m = _BODY_KEY.match(key)
    if m is None:
        return key
    body, unit, rest = m.group(1), int(m.group(2)), m.group(3)
    if body == "":
        flat = unit
    else:
        stage = int(body) - 1
        if not 0 <= stage < len(STAGES) or unit >= STAGES[stage][2]:
            return None
        flat = STAGE_START[stage] + unit
    if flat >= STAGE_START[-1]:
        return None
    if not split:
        return f"body.{flat}.{rest}"
    stage = max(s for s in range(len(STAGES)) if flat >= STAGE_START[s])
    return f"body{stage + 1}.{flat - STAGE_START[stage]}.{rest}"


def file_layout(keys: list[str]) -> str:
    """'body.N', 'body1/body2/body3' or 'unknown' (no unit keys): for the load report."""
    bodies = {m.group(1) for k in keys if (m := _BODY_KEY.match(k))}
    if not bodies:
        return "unknown"
    return "body.N" if bodies == {""} else "body1/body2/body3" if "" not in bodies else "mixed"


def load_ir50(backbone: IR50, path: Path, *, allow_partial: bool = False) -> LoadReport:
    """Load ir50.pth (either key layout, optionally under 'state_dict') into `backbone`.

    Prints 'loaded X of Y backbone tensors'. Every tensor of the backbone must load unless
    `allow_partial` (config model.allow_partial_backbone) says the user wants a partly random one.
    """
    state = load_state_file(path, key="state_dict")
    layout = file_layout(list(state))
    renamed: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        new = remap_key(key, backbone.split)
        new = key if new is None else new  # kept under its own name, so the report lists it as unused
        if new in renamed:
            raise ValueError(f"{path}: keys of both IR-50 layouts map to {new!r}; the file mixes layouts ({layout})")
        renamed[new] = value
    renamed, filled = fill_bn_counters(backbone, renamed)
    # Every backbone tensor must load: a partly random backbone is what made POSTER++ upstream
    # silently weak. What else the file holds (the 4th stage of a full IR-50) is reported as unused.
    report = load_into(backbone, renamed, files=[Path(path)], what="backbone", allow_unexpected=("*",),
                       allow_missing=("*",) if allow_partial else (),
                       layout="the IR-50 file (ir50.pth), body.N or body1/body2/body3 keys",
                       fix="Set model.allow_partial_backbone=true to train with a partly random backbone anyway.")
    report.notes.append(f"ir50 file layout {layout}, remapped to {'body1/body2/body3' if backbone.split else 'body.N'}")
    if filled:
        report.notes.append(f"{len(filled)} BatchNorm num_batches_tracked counters absent from the file, set to 0")
    return report
