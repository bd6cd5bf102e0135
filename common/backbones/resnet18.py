"""ResNet-18 and its MS-Celeb face-recognition weights (resnet18_msceleb.pth), once for DAN and Ada-DF.

Both models start from the same file: {'state_dict': resnet18 keys (conv1, bn1, layer1..4, a
1000-way fc)}, names that torchvision's and timm's resnet18 share. One builder serves both: timm's,
whose `global_pool` flattens (Ada-DF's branches end in global_pool + fc); from one seed it draws
the same initial weights as torchvision's.
"""
from __future__ import annotations

from pathlib import Path

import timm
import torch
from torch import nn

from common.checkpoint import load_state_file

MSCELEB_FILE = "resnet18_msceleb.pth"
MSCELEB_CLASSES = 1000  # the identity classifier the file ends in, which neither model uses
MSCELEB_LAYOUT = "resnet18 keys (conv1.weight, layer1.0.bn1.bias, ..., fc.*) under 'state_dict'"


def resnet18(num_classes: int = MSCELEB_CLASSES) -> nn.Module:
    """A randomly initialised ResNet-18 (children conv1, bn1, act1, maxpool, layer1..4, global_pool, fc).

    zero_init_last=False: timm's default zeroes each block's last BatchNorm gain, which leaves the
    block's convolutions without gradient until that gain moves; from scratch, every parameter
    should learn from step 1 (and torchvision's init, which the authors of DAN used, does not zero it).
    """
    return timm.create_model("resnet18", pretrained=False, num_classes=num_classes, zero_init_last=False)


def read_msceleb(path: Path) -> dict[str, torch.Tensor]:
    """The state dict of resnet18_msceleb.pth (safe load)."""
    return load_state_file(path, key="state_dict")
