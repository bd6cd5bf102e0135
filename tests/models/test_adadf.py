"""Ada-DF's model-specific logic: class label distributions (LD), warm-up, rank regularisation,
the fused-target loss, and loading the authors' resnet18_msceleb.pth format."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from common.backbones.resnet18 import resnet18
from common.config import resolve
from common.registry import get_adapter
from models.adadf import losses


def _task(num_classes: int = 3, **model: object):
    cfg = resolve("adadf", "synthetic", "full", {"model": model} if model else None)
    torch.manual_seed(0)
    return get_adapter("adadf").build(num_classes, cfg, [1] * num_classes)


class _Known(nn.Module):
    """Stands in for the network: returns fixed (out1, out2, attention)."""

    def __init__(self, out1: torch.Tensor, out2: torch.Tensor, attention: torch.Tensor) -> None:
        super().__init__()
        self.outputs = (out1, out2, attention)

    def forward(self, image: torch.Tensor):
        return self.outputs


def _logits(probs: list[list[float]]) -> torch.Tensor:
    return torch.tensor(probs).log()  # softmax(log p) == p for rows summing to 1


def test_fallback_rows_sum_to_one() -> None:
    ld = losses.fallback_distributions(7, threshold=0.7)
    assert torch.allclose(ld.sum(1), torch.ones(7))
    assert torch.allclose(torch.diagonal(ld), torch.full((7,), 0.7))
    assert ld[0, 1].item() == pytest.approx(0.05)  # upstream's fallback had 0.4/6, a row summing to 1.1


def test_ld_update_from_known_predictions() -> None:
    task = _task(3)
    # Class 0: mean prediction [0.8, 0.1, 0.1] (confident) -> used as is.
    # Class 1: mean [0.3, 0.5, 0.2] (0.5 < threshold 0.7) -> fallback row.
    # Class 2: no sample this epoch -> fallback row.
    out1 = _logits([[0.9, 0.05, 0.05], [0.7, 0.15, 0.15], [0.4, 0.4, 0.2], [0.2, 0.6, 0.2]])
    targets = torch.tensor([0, 0, 1, 1])
    task.net = _Known(out1, torch.zeros(4, 3), torch.full((4, 1), 0.5))
    task.train()
    task.on_epoch_start(0)
    task(torch.zeros(4, 3, 8, 8), targets[:4])
    assert torch.equal(task.class_distributions, losses.fallback_distributions(3)), "LD changes only at epoch end"
    task.on_epoch_end(0)
    expected = torch.tensor([[0.8, 0.1, 0.1], [0.15, 0.7, 0.15], [0.15, 0.15, 0.7]])
    assert torch.allclose(task.class_distributions, expected, atol=1e-6)
    assert torch.allclose(task.class_distributions.sum(1), torch.ones(3))


def test_ld_accumulates_over_batches_resets_per_epoch_and_ignores_eval() -> None:
    task = _task(2)
    x = torch.zeros(2, 3, 8, 8)
    task.train()
    task.on_epoch_start(0)
    for p in (0.9, 0.7):  # two batches of class 0: mean 0.8
        task.net = _Known(_logits([[p, 1 - p], [p, 1 - p]]), torch.zeros(2, 2), torch.tensor([[0.2], [0.6]]))
        task(x, torch.tensor([0, 0]))
    task.eval()
    task.net = _Known(_logits([[0.1, 0.9], [0.1, 0.9]]), torch.zeros(2, 2), torch.tensor([[0.2], [0.6]]))
    task(x, torch.tensor([0, 0]))  # a forward in eval mode (e.g. a validation loss) is not training data
    task.on_epoch_end(0)
    assert torch.allclose(task.class_distributions[0], torch.tensor([0.8, 0.2]), atol=1e-6)

    task.train()
    task.on_epoch_start(1)  # the new epoch starts from zero: only this batch counts
    task.net = _Known(_logits([[0.75, 0.25], [0.75, 0.25]]), torch.zeros(2, 2), torch.tensor([[0.2], [0.6]]))
    task(x, torch.tensor([0, 0]))
    task.on_epoch_end(1)
    assert torch.allclose(task.class_distributions[0], torch.tensor([0.75, 0.25]), atol=1e-6)


def test_ld_and_epoch_are_checkpointed() -> None:
    task = _task(3)
    task.class_distributions.copy_(torch.tensor([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8]]))
    task.on_epoch_start(5)
    state = task.state_dict()
    assert "class_distributions" in state and "epoch" in state
    assert not any(k in state for k in ("prob_sum", "counts")), "per-epoch accumulators are not checkpoint state"
    fresh = _task(3)
    fresh.load_state_dict(state, strict=True)
    assert torch.equal(fresh.class_distributions, task.class_distributions)
    assert fresh.alphas() == task.alphas() == losses.warmup_alphas(6, 3)


def test_warmup_switch() -> None:
    # epochs are 1-based upstream: during epochs 1..beta the KL weight ramps up, CE stays at 1
    assert losses.warmup_alphas(1, 3) == pytest.approx((math.exp(-4 / 9), 1.0))
    assert losses.warmup_alphas(2, 3) == pytest.approx((math.exp(-1 / 9), 1.0))
    assert losses.warmup_alphas(3, 3) == pytest.approx((1.0, 1.0))
    # afterwards KL stays at 1 and the CE weight decays
    assert losses.warmup_alphas(4, 3) == pytest.approx((1.0, math.exp(-1 / 16)))
    assert losses.warmup_alphas(100, 3) == pytest.approx((1.0, math.exp(-0.97 ** 2)))
    assert losses.warmup_alphas(7, 3, alpha=0.4) == pytest.approx((0.4, 0.6))
    task = _task(3)
    task.on_epoch_start(0)  # the training loop's epochs are 0-based
    assert task.alphas() == pytest.approx((math.exp(-4 / 9), 1.0))
    task.on_epoch_start(3)
    assert task.alphas() == pytest.approx((1.0, math.exp(-1 / 16)))


def test_rank_regularization_hand_checked() -> None:
    # B=10: the 7 largest form the high group, the 3 smallest the low group.
    att = torch.tensor([0.52, 0.51, 0.50, 0.50, 0.50, 0.50, 0.50, 0.49, 0.48, 0.47]).unsqueeze(1)
    att.requires_grad_(True)
    rr = losses.rank_regularization(att[torch.randperm(10)], tops=0.7, margin=0.07)
    # high mean 3.53/7 = 0.504286, low mean 0.48: 0.48 - 0.504286 + 0.07 = 0.045714
    assert rr.item() == pytest.approx(0.48 - 3.53 / 7 + 0.07, abs=1e-6)
    rr.backward()
    assert att.grad[0].item() == pytest.approx(-1 / 7) and att.grad[9].item() == pytest.approx(1 / 3)
    assert losses.rank_regularization(torch.full((10, 1), 0.5)).item() == pytest.approx(0.07)
    spread = torch.linspace(0.9, 0.0, 10).unsqueeze(1)  # high mean 0.6, low mean 0.1: hinge is 0
    assert losses.rank_regularization(spread).item() == 0.0
    assert losses.rank_regularization(torch.tensor([[0.3]])).item() == 0.0  # no low group in a batch of 1


def test_fusion_weights() -> None:
    w = losses.fusion_weights(torch.tensor([[0.1], [0.3], [0.5]]), min_weight=0.2, max_weight=1.0)
    assert torch.allclose(w, torch.tensor([[0.2], [0.6], [1.0]]))
    flat = losses.fusion_weights(torch.full((4, 1), 0.4))  # upstream divides 0 by 0 here
    assert torch.allclose(flat, torch.full((4, 1), 0.2))


def test_loss_combines_every_term() -> None:
    task = _task(3)
    out1 = torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0], [0.0, 0.0, 3.0], [1.0, 1.0, 1.0]])
    out2 = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 1.0, 1.0], [0.5, 0.0, 0.5]])
    att = torch.tensor([[0.5], [0.9], [0.1], [0.3]])  # tops=int(2.8)=2: high {0.9,0.5}, low {0.3,0.1}
    y = torch.tensor([0, 1, 2, 0])
    task.net = _Known(out1, out2, att)
    task.train()
    task.on_epoch_start(4)  # epoch 5: alpha_1 = 1, alpha_2 = exp(-(1 - 3/5)^2)
    out = task(torch.zeros(4, 3, 8, 8), y)

    w = torch.tensor([[0.6], [1.0], [0.2], [0.4]])  # attention min-max scaled into [0.2, 1.0]
    ld = losses.fallback_distributions(3)
    target = (1 - w) * out1.softmax(1) + w * ld[y]
    kld = (target * (target.log() - out2.log_softmax(1))).sum() / 4
    ce = F.cross_entropy(out1, y)
    rr = max(0.0, (0.3 + 0.1) / 2 - (0.9 + 0.5) / 2 + 0.07)  # = 0: well separated
    expected = math.exp(-0.16) * ce + 1.0 * kld + rr
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert torch.equal(out["logits"], out2), "the prediction branch is branch 2"
    assert out["loss_kld"].item() == pytest.approx(kld.item(), rel=1e-5)


def test_predict_uses_branch_two() -> None:
    task = _task(3)
    task.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(task.predict(x), task.net(x)[1])


def test_freeze_stem_keeps_it_frozen_and_in_eval() -> None:
    task = _task(3, freeze_stem=True)
    task.train()
    assert not any(p.requires_grad for p in task.net.feature.parameters())
    assert not task.net.feature.training and task.net.branch_1.training
    assert all(id(p) not in {id(q) for q in task.net.feature.parameters()}
               for g in task.param_groups() for p in g["params"])


def test_load_msceleb_weights(tmp_path) -> None:
    task = _task(7)
    torch.manual_seed(1)
    sd = resnet18().state_dict()  # the authors' file: resnet18 key names, 1000-way fc
    path = tmp_path / "resnet18_msceleb.pth"
    torch.save({"state_dict": sd}, path)
    classifier_before = task.net.branch_1_classifier.weight.detach().clone()
    report = get_adapter("adadf").load_pretrained(task, {"resnet18_msceleb.pth": path})
    assert report.loaded == report.expected == len(sd) and not report.missing and not report.unexpected
    net = task.net.state_dict()
    for key, value in sd.items():
        name = key.split(".", 1)[0]
        rest = key.split(".", 1)[1]
        if name in ("conv1", "bn1", "layer1"):
            target_keys = [f"feature.{('conv1', 'bn1', 'act1', 'maxpool', 'layer1').index(name)}.{rest}"]
        elif name in ("layer2", "layer3", "layer4"):
            i = ("layer2", "layer3", "layer4").index(name)
            target_keys = [f"{b}.{i}.{rest}" for b in ("branch_1", "branch_2", "branch_1_feature", "branch_2_feature")]
        else:
            assert name == "fc"
            continue
        for t in target_keys:
            assert torch.equal(net[t], value), t
    # the 1000-way fc is not used; the fresh C-way classifiers stay as built
    assert torch.equal(task.net.branch_1_classifier.weight, classifier_before)


def test_load_reports_unmatched_keys_by_name(tmp_path) -> None:
    sd = resnet18().state_dict()
    sd["head.extra.weight"] = torch.zeros(3)
    del sd["layer3.1.bn2.running_var"]
    path = tmp_path / "resnet18_msceleb.pth"
    torch.save({"state_dict": sd}, path)
    with pytest.raises(ValueError, match=r"layer3\.1\.bn2\.running_var.*head\.extra\.weight"):
        get_adapter("adadf").load_pretrained(_task(7), {"resnet18_msceleb.pth": path})
