"""GSDNet-specific logic: each term of the gradual self-distillation loss on hand-checkable inputs, the
fix of the upstream aliasing of exit 0, and the published weights' format (a latin1 pickle of numpy
arrays under the VGGFace2 ResNet-50 names) through the one-time converter into load_pretrained."""
from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from common.config import resolve
from common.registry import get_adapter
from models.gsdnet.adapter import WEIGHTS
from models.gsdnet.losses import gradual_distillation, soft_cross_entropy
from models.gsdnet.convert import convert


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def task():
    torch.manual_seed(0)
    return get_adapter("gsdnet").build(7, resolve("gsdnet", "synthetic", "quick"), [1] * 7)


def test_soft_cross_entropy_values():
    # equal logits -> uniform at any temperature -> log(C)
    assert soft_cross_entropy(torch.zeros(4, 7), torch.zeros(4, 7), 3.0).item() == pytest.approx(math.log(7))
    # teacher [3 ln 3, 0] at T=3 -> p = (3/4, 1/4); the same student -> the entropy of p
    t = torch.tensor([[3 * math.log(3), 0.0]])
    assert soft_cross_entropy(t, t, 3.0).item() == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    # a uniform student against that teacher: -sum p log(1/2) = log 2, whatever p
    assert soft_cross_entropy(torch.zeros(1, 2), t, 3.0).item() == pytest.approx(math.log(2))


def test_gradual_distillation_terms_and_direction():
    feats = [torch.full((2, 128), float(k), requires_grad=True) for k in range(4)]
    logits = [torch.zeros(2, 7, requires_grad=True) for _ in range(4)]
    feat_term, kd_term = gradual_distillation(logits, feats, 3.0)
    # ||f_k - f_k+1|| over the whole batch: sqrt(2 * 128 * 1^2) = 16, for 3 pairs
    assert feat_term.item() == pytest.approx(48.0)
    assert kd_term.item() == pytest.approx(3 * math.log(7))
    (feat_term + kd_term).backward()
    # the deeper exit is the teacher (detached): exit 3 gets no gradient, exits 0-2 do
    assert feats[3].grad is None and logits[3].grad is None
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in feats[:3])


def test_task_loss_is_ce_of_last_exit_plus_weighted_terms(task):
    x, y = torch.randn(2, 3, 64, 64), torch.tensor([1, 5])
    task.eval()
    with torch.no_grad():
        out = task(x, y)
        logits, feats, _, _ = task.net(x)
    ce = F.cross_entropy(logits[3], y)
    f_term = sum(torch.dist(feats[k], feats[k + 1]) for k in range(3))
    kd = sum(soft_cross_entropy(logits[k], logits[k + 1], 3.0) for k in range(3))
    assert out["ce"].item() == pytest.approx(ce.item(), rel=1e-5)
    assert out["feature_distance"].item() == pytest.approx(f_term.item(), rel=1e-5)
    assert out["distillation"].item() == pytest.approx(kd.item(), rel=1e-5)
    assert out["loss"].item() == pytest.approx((ce + 0.01 * f_term + 0.3 * kd).item(), rel=1e-5)
    assert torch.equal(out["logits"], logits[3]) and torch.equal(task.predict(x), logits[3])


def test_exit0_is_its_own_output_not_the_sum_of_exits(task):
    """Upstream's in-place `+=` turned exit 0 into the teacher (sum of all exits); fixed here."""
    r = task.net.resnet
    task.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        logits, feats, teacher, teacher_feat = task.net(x)
        pooled = r.cm1(r.layer1(r.maxpool(r.relu(r.bn1(r.conv1(x))))))
        own_logits, own_feat = r.fc_1_1(pooled), r.fc_1(pooled)
    torch.testing.assert_close(logits[0], own_logits)
    torch.testing.assert_close(feats[0], own_feat)
    torch.testing.assert_close(teacher, logits[0] + logits[1] + logits[2] + logits[3])
    torch.testing.assert_close(teacher_feat, feats[0] + feats[1] + feats[2] + feats[3])
    assert (logits[0] - teacher).abs().max() > 1e-3


def test_deepest_feature_head_is_frozen_and_untouched_by_the_loss(task):
    """With the aliasing fixed, fc_4's feature is only ever a detached teacher: no term reaches it."""
    frozen = [n for n, p in task.net.named_parameters() if not p.requires_grad]
    assert frozen == ["resnet.fc_4.weight", "resnet.fc_4.bias"]
    task.train()
    task.net.resnet.fc_4.weight.requires_grad_(True)  # temporarily, to see whether any term would reach it
    try:
        task(torch.randn(2, 3, 64, 64), torch.tensor([0, 1]))["loss"].backward()
        assert task.net.resnet.fc_4.weight.grad is None
        assert task.net.resnet.fc_3.weight.grad.abs().sum() > 0
    finally:
        task.net.resnet.fc_4.weight.requires_grad_(False)
        task.zero_grad(set_to_none=True)


def _vggface2_pickle(task, path) -> dict[str, np.ndarray]:
    """The published file's format: latin1-compatible protocol-2 pickle of name -> float32 array,
    trunk names without BatchNorm counters (the Caffe conversion has none), plus the identity
    classifier fc.* (8631-way in the real file; 10-way here to keep the test small)."""
    rng = np.random.default_rng(0)
    arrays = {k: rng.uniform(0.5, 1.5, size=tuple(v.shape)).astype(np.float32)
              for k, v in task.net.trunk().state_dict().items() if not k.endswith("num_batches_tracked")}
    arrays["fc.weight"] = np.zeros((10, 2048), np.float32)
    arrays["fc.bias"] = np.zeros(10, np.float32)
    with open(path, "wb") as f:
        pickle.dump(arrays, f, protocol=2)
    return arrays


def test_converted_pickle_loads_every_trunk_tensor(task, tmp_path):
    src, dst = tmp_path / "original.pkl", tmp_path / WEIGHTS
    arrays = _vggface2_pickle(task, src)
    with pytest.raises(ValueError, match="models.gsdnet.convert"):  # the legacy pickle itself is refused
        get_adapter("gsdnet").load_pretrained(task, {WEIGHTS: src})

    state = convert(src, dst)
    assert state.keys() == arrays.keys()
    report = get_adapter("gsdnet").load_pretrained(task, {WEIGHTS: dst})
    trunk = task.net.trunk().state_dict()
    assert report.loaded == len(arrays) - 2 == len([k for k in trunk if not k.endswith("num_batches_tracked")])
    for k, v in trunk.items():
        if not k.endswith("num_batches_tracked"):
            assert torch.equal(v, torch.from_numpy(arrays[k])), k
    assert task.net.resnet.layer4[2].bn3.running_var.min() >= 0.5  # loaded into the live network
    assert report.unexpected == ["fc.weight", "fc.bias"] and "fc.weight" in report.notes[0]
    assert all(k.endswith("num_batches_tracked") for k in report.missing)


def test_incomplete_file_names_the_missing_keys(task, tmp_path):
    state = {k: v for k, v in task.net.trunk().state_dict().items() if not k.startswith("layer3.5.")}
    state["layer9.weight"] = torch.zeros(1)
    path = tmp_path / WEIGHTS
    torch.save(state, path)
    with pytest.raises(ValueError) as err:
        get_adapter("gsdnet").load_pretrained(task, {WEIGHTS: path})
    assert "layer3.5.bn1.bias" in str(err.value) and "layer9.weight" in str(err.value)


def test_converter_refuses_foreign_globals(tmp_path):
    path = tmp_path / "evil.pkl"
    with open(path, "wb") as f:
        pickle.dump({"conv1.weight": __import__("os").system}, f, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="refusing global"):
        convert(path, tmp_path / "out.pth")
