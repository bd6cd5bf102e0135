"""Ada-DF network: a ResNet-18 (common/backbones/resnet18.py) whose stem and layer1 are shared by two branches.

Each branch is layer2-4 + global average pool + fc, with a sigmoid attention head on the pooled
feature that scales the branch's logits. The branch-1 logits feed the auxiliary (label
distribution) branch of the paper; branch 2 is the target branch used for prediction.

The module layout mirrors the authors' `ResNet18` (taylor-xy0827/Ada-DF, model.py) so that their
state dicts load strict: `feature` (conv1, bn1, act1, maxpool, layer1), `branch_k` (layer2, layer3,
layer4, global_pool, fc) and the aliases `branch_k_feature` (= branch_k[:4]) and
`branch_k_classifier` (= branch_k[4]). The aliases share parameters with `branch_k`, so a state dict
lists those tensors twice under two names, as the authors' does; parameters() counts them once.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from common.backbones.resnet18 import resnet18

# Children of the resnet18, in order; the first five form the shared trunk.
_SHARED = ("conv1", "bn1", "act1", "maxpool", "layer1")
_BRANCH = ("layer2", "layer3", "layer4", "global_pool", "fc")


class AdaDFNet(nn.Module):
    """forward(x) -> (out1 [B,C], out2 [B,C], attention [B,1]); predict with out2."""

    def __init__(self, num_classes: int = 7, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.drop_rate = drop_rate
        base = resnet18(num_classes)
        children = dict(base.named_children())
        self.feature = nn.Sequential(*(children[n] for n in _SHARED))
        # Registration order matters for the duplicated keys: load_state_dict copies `branch_1.*`
        # then `branch_1_feature.*` into the same tensors, as with the authors' module.
        self.branch_1 = nn.Sequential(*(children[n] for n in _BRANCH))
        self.branch_1_feature = nn.Sequential(*list(self.branch_1)[:-1])
        self.branch_1_classifier = self.branch_1[-1]
        # Branch 2 starts as an exact copy of branch 1 (the authors deep-copy it after loading weights).
        self.branch_2 = copy.deepcopy(self.branch_1)
        self.branch_2_feature = nn.Sequential(*list(self.branch_2)[:-1])
        self.branch_2_classifier = self.branch_2[-1]
        self.alpha_1 = nn.Sequential(nn.Linear(512, 1), nn.Sigmoid())
        self.alpha_2 = nn.Sequential(nn.Linear(512, 1), nn.Sigmoid())

    def copy_branches_from(self, trunk: nn.Module) -> None:
        """Copy a resnet18's stem+layer1 into `feature` and its layer2-4 into both branches.

        The fc of `trunk` is not copied: the authors replace the 1000-way fc by a fresh C-way one.
        """
        src = dict(trunk.named_children())
        with torch.no_grad():
            for dst, name in zip(self.feature, _SHARED):
                dst.load_state_dict(src[name].state_dict(), strict=True)
            for branch in (self.branch_1, self.branch_2):
                for dst, name in zip(branch, _BRANCH[:3]):
                    dst.load_state_dict(src[name].state_dict(), strict=True)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        shared = self.feature(image)
        # The authors build a fresh nn.Dropout in forward, which is always in training mode; this
        # one follows train/eval (identical at the default drop_rate 0).
        shared = F.dropout(shared, self.drop_rate, self.training)
        feat_1 = self.branch_1_feature(shared)
        feat_2 = self.branch_2_feature(shared)
        att_1 = self.alpha_1(feat_1)
        att_2 = self.alpha_2(feat_2)
        out_1 = att_1 * self.branch_1_classifier(feat_1)
        out_2 = att_2 * self.branch_2_classifier(feat_2)
        return out_1, out_2, (att_1 + att_2) / 2
