"""LNSU-Net: the re-balanced label smoothing, the CAM flip consistency, and start_0.pt loading."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from common import registry
from common.config import resolve
from models.lnsunet.adapter import LNSUNetConfig, LNSUNetTask
from models.lnsunet.losses import (class_balance_weights, flip_consistency_loss, rebalanced_lsr_loss,
                                   rebalanced_targets)
from models.lnsunet.network import LNSUNet

# RAF-DB's official training split (Surprise, Fear, Disgust, Happiness, Sadness, Anger, Neutral)
# and the weights upstream hard-codes from it.
RAF_TRAIN_COUNTS = [1290, 281, 717, 4772, 1982, 705, 2524]
UPSTREAM_WEIGHTS = [0.95124031, 4.36690391, 1.71143654, 0.25714585, 0.6191221, 1.74056738, 0.48617274]


def _small_config(**losses: float) -> LNSUNetConfig:
    """The reduced CPU trunk of the quick profile, with the given loss weights."""
    return LNSUNetConfig.from_cfg({**resolve("lnsunet", "synthetic", "quick")["model"], **losses})


def _small_task(class_counts: list[int], smoothing: float, flip_weight: float) -> LNSUNetTask:
    torch.manual_seed(0)
    config = _small_config(smoothing=smoothing, flip_weight=flip_weight)
    return LNSUNetTask(len(class_counts), class_counts, config, image_size=112)


def _small_net(num_classes: int = 3) -> LNSUNet:
    return _small_task([1] * num_classes, smoothing=0.3, flip_weight=0.1).net


def test_weights_from_raf_counts_are_upstream_constants() -> None:
    w = class_balance_weights(RAF_TRAIN_COUNTS)
    assert torch.allclose(w, torch.tensor(UPSTREAM_WEIGHTS), atol=1e-7)


def test_rebalanced_targets_by_hand() -> None:
    # counts [1, 1, 2]: w = 4 / (10 * n) = [0.4, 0.4, 0.2]
    w = class_balance_weights([1, 1, 2])
    assert torch.allclose(w, torch.tensor([0.4, 0.4, 0.2]))
    soft = rebalanced_targets(torch.tensor([0, 2]), w, 0.3)
    # target 0: 0.3 split 0.4 : 0.2 over classes 1, 2; target 2: split 0.4 : 0.4 over classes 0, 1
    assert torch.allclose(soft, torch.tensor([[0.7, 0.2, 0.1], [0.15, 0.15, 0.7]]))


def test_rebalanced_lsr_loss_by_hand() -> None:
    w = class_balance_weights([1, 1, 2])
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25], [1 / 3, 1 / 3, 1 / 3]]))
    loss = rebalanced_lsr_loss(logits, torch.tensor([0, 2]), w, 0.3)
    # sample 0: -(0.7 ln 1/2 + 0.2 ln 1/4 + 0.1 ln 1/4) = 1.3 ln 2; sample 1: uniform prediction -> ln 3
    assert loss.item() == pytest.approx((1.3 * math.log(2) + math.log(3)) / 2, abs=1e-6)
    # no smoothing: plain cross-entropy
    assert rebalanced_lsr_loss(logits, torch.tensor([0, 2]), w, 0.0).item() == pytest.approx(
        F.cross_entropy(logits, torch.tensor([0, 2])).item(), abs=1e-6)


def test_task_takes_prior_from_class_counts() -> None:
    task = _small_task([1, 1, 2], smoothing=0.3, flip_weight=0.0)
    assert torch.allclose(task.class_weights, torch.tensor([0.4, 0.4, 0.2]))
    assert "class_weights" in task.state_dict()
    task.eval()
    x, y = torch.randn(2, 3, 112, 112, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 2])
    with torch.no_grad():
        out = task(x, y)
        expected = rebalanced_lsr_loss(task.predict(x), y, torch.tensor([0.4, 0.4, 0.2]), 0.3)
    assert out["loss"].item() == pytest.approx(expected.item(), abs=1e-6)
    with pytest.raises(ValueError, match="3 classes"):
        LNSUNetTask(3, [5, 5], _small_config(), image_size=112)


def test_flip_consistency_by_hand() -> None:
    w = torch.tensor([2.0, 1.0])
    hm = torch.randn(3, 2, 7, 7, generator=torch.Generator().manual_seed(0))
    assert flip_consistency_loss(hm, hm.flip(-1), w).item() == 0.0  # mirrored maps agree exactly
    assert flip_consistency_loss(hm, hm, w).item() > 0.0  # a map that ignores the mirror does not
    one = torch.zeros(1, 2, 7, 7)
    one[0, 0, 0, 0] = 1.0  # class 0 fires at the top-left; the mirrored pass fires there too
    # mirrored back it fires top-right: two cells differ by 1 -> 2/49, times w_0 = 2
    assert flip_consistency_loss(one, one, w).item() == pytest.approx(4 / 49)


class _PoolNet(nn.Module):
    """CAMs = the image's channel mean pooled to 7x7, one map per class (optionally plus a left-right
    ramp). Without the ramp the maps mirror with the image, so a correct flip term is exactly 0."""

    num_classes = 2

    def __init__(self, ramp: bool) -> None:
        super().__init__()
        self.ramp = ramp

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        maps = F.adaptive_avg_pool2d(x.mean(1, keepdim=True), 7).expand(-1, 2, -1, -1)
        if self.ramp:
            maps = maps + torch.linspace(0, 1, 7)
        return maps.mean((2, 3)), maps


def test_task_flip_term_pairs_image_with_its_mirror() -> None:
    x = torch.randn(2, 3, 112, 112, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1])
    symmetric = torch.cat([x[..., :56], x[..., :56].flip(-1)], dim=-1)
    equivariant = _small_task([3, 1], smoothing=0.3, flip_weight=0.1)
    equivariant.net = _PoolNet(ramp=False)  # the network stands in for one whose maps are known
    assert equivariant(x, y)["flip"].item() == pytest.approx(0.0, abs=1e-12)
    not_equivariant = _small_task([3, 1], smoothing=0.3, flip_weight=0.1)
    not_equivariant.net = _PoolNet(ramp=True)
    out = not_equivariant(symmetric, y)
    assert out["flip"].item() > 0.0
    assert out["loss"].item() == pytest.approx(out["lsr"].item() + 0.1 * out["flip"].item(), rel=1e-6)


def test_task_flip_term_matches_two_passes() -> None:
    """The task runs image and mirror in one batch; upstream runs two passes. Same numbers in eval."""
    task = _small_task([4, 2, 1], smoothing=0.3, flip_weight=0.1).eval()
    net = task.net
    x, y = torch.randn(2, 3, 112, 112, generator=torch.Generator().manual_seed(1)), torch.tensor([1, 2])
    with torch.no_grad():
        out = task(x, y)
        _, hm = net(x)
        _, hm_of_flipped = net(x.flip(-1))
    expected = flip_consistency_loss(hm, hm_of_flipped, task.class_weights)
    assert out["flip"].item() > 0.0
    assert out["flip"].item() == pytest.approx(expected.item(), rel=1e-4)


def test_unused_embedding_head_is_frozen_and_in_eval_mode() -> None:
    net = _small_net().train()
    assert not any(p.requires_grad for p in net.encoder.feature.parameters())
    assert not any(p.requires_grad for p in net.encoder.norm.parameters())
    assert not net.encoder.feature.training and net.head.training


@pytest.fixture(scope="module")
def full_task() -> LNSUNetTask:
    """The full-size model as a run on RAF-DB builds it (Swin-T, 112 px, patch 2)."""
    return registry.get_adapter("lnsunet").build(7, resolve("lnsunet", "rafdb", "full"), RAF_TRAIN_COUNTS)


def test_parameter_counts_match_the_authors(full_task: LNSUNetTask) -> None:
    total = sum(p.numel() for p in full_task.net.parameters())
    used = sum(p.numel() for p in full_task.net.parameters() if p.requires_grad)
    assert (total, used) == (28_508_417, 27_521_281)  # the authors' class: 28.51M registered, 27.52M used


def test_start_0_loads_every_encoder_tensor(full_task: LNSUNetTask, tmp_path) -> None:
    adapter = registry.get_adapter("lnsunet")
    # the authors' key names and shapes (the parity fixture checks those), other values
    authors = {k: v + 1 if v.is_floating_point() else v.clone() for k, v in full_task.net.encoder.state_dict().items()}
    # the layout of the authors' pre-training checkpoint (insightface arcface_torch style)
    path = tmp_path / "start_0.pt"
    torch.save({"epoch": 3, "global_step": 6000, "state_dict_backbone": authors,
                "state_dict_softmax_fc": {"weight": torch.zeros(4, 512)}}, path)
    report = adapter.load_pretrained(full_task, {"start_0.pt": path})
    assert report.loaded == report.expected == len(authors) and not report.missing and not report.unexpected
    loaded = full_task.net.encoder.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in authors.items())

    broken = dict(authors)
    broken.pop("layers.2.downsample.norm.weight")
    broken["head.weight"] = torch.zeros(7, 768)
    torch.save({"state_dict_backbone": broken}, path)
    with pytest.raises(ValueError, match=r"layers\.2\.downsample\.norm\.weight.*head\.weight"):
        adapter.load_pretrained(full_task, {"start_0.pt": path})


def test_converter_makes_a_refused_file_safe(tmp_path) -> None:
    import argparse

    from common.checkpoint import load_state_file
    from models.lnsunet.convert import convert

    encoder = _small_net().encoder.state_dict()
    src, dst = tmp_path / "start_0_legacy.pt", tmp_path / "start_0.pt"
    # a checkpoint that also pickles the training arguments: the safe loader refuses it
    torch.save({"state_dict_backbone": {f"module.{k}": v for k, v in encoder.items()},
                "args": argparse.Namespace(lr=5e-4)}, src)
    with pytest.raises(ValueError, match="weights_only"):
        load_state_file(src, key="state_dict_backbone")
    convert(src, dst)
    safe = load_state_file(dst, key="state_dict_backbone")
    assert safe.keys() == encoder.keys() and all(torch.equal(safe[k], v) for k, v in encoder.items())
