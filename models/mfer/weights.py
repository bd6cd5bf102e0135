"""Loading ConvNeXt-B weights in Facebook's key layout (the one the authors' model.py uses) into MFERNet.

Facebook's ImageNet checkpoints (`convnext_base_1k_224_ema.pth`, `{"model": state_dict}`) and the
authors' own ConvNeXt class name the trunk `downsample_layers.*`, `stages.<i>.<j>.*`, `norm.*`;
MFERNet wraps timm's convnext_base under `backbone.`. The remap below is the whole difference.
An ImageNet file cannot hold MFER's new modules (DS attention, Msc heads) and holds a 1000-way
classifier MFER does not have; those, and only those, may be missing / unused. Anything else
unmatched is an error that names the keys.
"""
from __future__ import annotations

import re
from fnmatch import fnmatchcase
from pathlib import Path

import torch
from torch import nn

from common.adapter import LoadReport
from common.checkpoint import load_into, load_state_file

# Facebook's ImageNet-1k ConvNeXt-B (the default of the authors' convnext_base(pretrained=True));
# the authors' MS-Celeb ConvNeXt weights were never released.
WEIGHTS = "convnext_base_1k_224_ema.pth"
# The ImageNet classifier (1000- or 21841-way), in either layout: MFER classifies with its Msc heads.
CLASSIFIER_KEYS = ("head.weight", "head.bias", "head.fc.*")

# Sub-dicts a checkpoint may keep its weights under: Facebook's release ("model"), the authors'
# train.py ("model_state_dict"), the usual "state_dict"; a flat state dict is used as is.
CHECKPOINT_KEYS = ("model", "model_state_dict", "state_dict")

_FB_BLOCK = re.compile(r"^stages\.(\d+)\.(\d+)\.(.+)$")
_FB_DOWN = re.compile(r"^downsample_layers\.(\d+)\.(.+)$")
_TIMM_TRUNK = re.compile(r"^(stem\.|stages\.\d+\.(blocks|downsample)\.|head\.norm\.)")
_BLOCK_RENAMES = {"dwconv.": "conv_dw.", "pwconv1.": "mlp.fc1.", "pwconv2.": "mlp.fc2."}


def fb_to_ours(key: str) -> str | None:
    """Our key for a Facebook-layout (or timm-layout) ConvNeXt key; None for the ImageNet classifier."""
    if key.startswith("msc."):
        return key
    if m := _FB_DOWN.match(key):
        i, rest = int(m.group(1)), m.group(2)
        return f"backbone.stem.{rest}" if i == 0 else f"backbone.stages.{i}.downsample.{rest}"
    if m := _FB_BLOCK.match(key):
        i, j, rest = m.groups()
        for old, new in _BLOCK_RENAMES.items():
            if rest.startswith(old):
                rest = new + rest[len(old):]
        return f"backbone.stages.{i}.blocks.{j}.{rest}"
    if key.startswith("norm."):
        return "backbone.head." + key
    if any(fnmatchcase(key, p) for p in CLASSIFIER_KEYS):
        return None
    if _TIMM_TRUNK.match(key):
        return "backbone." + key
    return key  # unknown: reported as unused by load_into


def new_module_keys(net: nn.Module) -> set[str]:
    """Keys of the modules MFER adds to ConvNeXt-B (DS attention blocks, Msc heads)."""
    from models.mfer.network import DSAttention

    keys = {k for k in net.state_dict() if k.startswith("msc.")}
    for name, mod in net.named_modules():
        if isinstance(mod, DSAttention):
            keys |= {f"{name}.{k}" for k in mod.state_dict()}
    return keys


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """The state dict of a checkpoint, under any of CHECKPOINT_KEYS or flat (safe load only)."""
    for key in CHECKPOINT_KEYS:
        try:
            return load_state_file(path, key)
        except KeyError:
            continue
    raise KeyError(f"{path}: no state dict under any of {', '.join(CHECKPOINT_KEYS)} and not a flat state dict")


def load_convnext_weights(net: nn.Module, path: Path) -> LoadReport:
    """Load a ConvNeXt-B checkpoint into `net` (an MFERNet); every unmatched key is reported by name.

    Missing DS-attention / Msc keys and an unused ImageNet classifier are expected (notes say so);
    any other missing or unused key raises ValueError listing them.
    """
    state = read_checkpoint(path)
    new_modules = new_module_keys(net)
    report = load_into(net, state, files=[Path(path)], rename=fb_to_ours, allow_missing=sorted(new_modules),
                       allow_unexpected=CLASSIFIER_KEYS, what="MFER network",
                       layout="Facebook's ConvNeXt-B layout (downsample_layers.*, stages.<i>.<j>.*, norm.*, head.*) "
                              "or timm's (stem.*, stages.<i>.blocks.<j>.*)")
    new_missing = [k for k in report.missing if k in new_modules]
    report.notes.append(f"{len(new_missing)} tensors of MFER's new modules (DS attention, Msc heads) not in the "
                        f"file, trained from their initialisation: {new_missing}")
    if report.unexpected:
        report.notes.append(f"ImageNet classifier not used: {report.unexpected}")
    return report
