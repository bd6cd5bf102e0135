"""DDAMFN-specific logic: the attention loss, the frozen never-called modules, and the published
backbone's format (a whole pickled MixedFeatureNet) through the one-time converter into load_pretrained."""
from __future__ import annotations

import sys
import types

import pytest
import torch
from torch import nn

from common.config import resolve
from common.registry import get_adapter
from models.ddamfn import network
from models.ddamfn.adapter import WEIGHTS
from models.ddamfn.losses import attention_loss
from models.ddamfn.convert import convert


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def task():
    torch.manual_seed(0)
    return get_adapter("ddamfn").build(7, resolve("ddamfn", "synthetic", "quick"), [1] * 7)


def test_attention_loss_is_pairs_over_summed_mse():
    a, b, c = torch.zeros(1, 2, 1, 1), torch.ones(1, 2, 1, 1), torch.full((1, 2, 1, 1), 3.0)
    assert attention_loss([a, b]).item() == pytest.approx(1.0)  # 1 pair / MSE 1
    # 3 pairs / (1 + 9 + 4)
    assert attention_loss([a, b, c]).item() == pytest.approx(3 / 14)
    assert attention_loss([a]).item() == 0.0


def test_loss_is_ce_plus_weighted_attention(task):
    x, y = torch.randn(2, 3, 112, 112), torch.tensor([0, 3])
    task.eval()
    with torch.no_grad():
        out = task(x, y)
        logits, _, heads = task.net(x)
    expected = nn.functional.cross_entropy(logits, y) + 0.1 * attention_loss(heads)
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert out["attention"].item() > 0


def test_never_called_modules_are_frozen_and_counted(task):
    frozen = {n for n, p in task.net.named_parameters() if not p.requires_grad}
    assert frozen == set(network.unused_parameter_names(task.net))
    assert "bn.weight" in frozen and "cat_head1.CoordAtt.Linear.conv.weight" in frozen
    assert "features.2.conv_dw.prelu.weight" in frozen and "features.2.CA.conv1.weight" not in frozen
    total = sum(p.numel() for p in task.net.parameters())
    used = sum(p.numel() for p in task.net.parameters() if p.requires_grad)
    assert (total, used) == (4_187_421, 4_105_999)


def test_only_112_px(task):
    with pytest.raises(ValueError, match="112"):
        task.predict(torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match="image_size"):
        get_adapter("ddamfn").build(7, resolve("ddamfn", "synthetic", "quick", {"data": {"image_size": 64}}), [1] * 7)


class _MixedFeatureNet(nn.Module):
    """The authors' full MixedFeatureNet layout: our nine trunk stages plus the embedding head."""

    def __init__(self) -> None:
        super().__init__()
        for name, module in network.mixed_feature_trunk():
            setattr(self, name, module)
        self.conv_6_dw = network.Linear_block(512, 512, kernel=(7, 7), groups=512)
        self.conv_6_flatten = nn.Flatten()
        self.linear = nn.Linear(512, 256, bias=False)
        self.bn = nn.BatchNorm1d(256)


def _pickle_as_authors_module(model: nn.Module, path) -> None:
    """torch.save(model) as if every non-torch class lived in the authors' `networks.MixedFeatureNet`,
    then make that module unimportable again, so the converter must do without it."""
    fake = types.ModuleType("networks.MixedFeatureNet")
    package = types.ModuleType("networks")
    package.MixedFeatureNet = fake
    clones: dict[type, type] = {}
    for m in model.modules():
        cls = type(m)
        if cls.__module__.startswith("torch."):
            continue
        if cls not in clones:
            name = "MixedFeatureNet" if m is model else cls.__name__
            clones[cls] = type(name, (nn.Module,), {"__module__": fake.__name__, "__qualname__": name,
                                                    "forward": cls.forward})
            setattr(fake, name, clones[cls])
        m.__class__ = clones[cls]
    sys.modules["networks"], sys.modules["networks.MixedFeatureNet"] = package, fake
    try:
        torch.save(model, path)
    finally:
        del sys.modules["networks"], sys.modules["networks.MixedFeatureNet"]


def test_converted_pickled_module_loads_every_trunk_tensor(task, tmp_path, capsys):
    torch.manual_seed(1)
    mfn = _MixedFeatureNet()
    for t in mfn.state_dict().values():
        if t.is_floating_point():
            t.uniform_(0.5, 1.5)  # distinguishable from any default init
    expected = {k: v.clone() for k, v in mfn.state_dict().items()}
    src, dst = tmp_path / "MFN_msceleb_original.pth", tmp_path / WEIGHTS
    _pickle_as_authors_module(mfn, src)
    assert "networks.MixedFeatureNet" not in sys.modules

    with pytest.raises(ValueError, match="models.ddamfn.convert"):  # the legacy file itself is refused
        get_adapter("ddamfn").load_pretrained(task, {WEIGHTS: src})

    state = convert(src, dst)
    assert "networks.MixedFeatureNet.Mix_Depth_Wise" in capsys.readouterr().out
    assert state.keys() == expected.keys()
    assert torch.load(dst, weights_only=True).keys() == expected.keys()

    report = get_adapter("ddamfn").load_pretrained(task, {WEIGHTS: dst})
    features = task.net.features.state_dict()
    assert report.loaded == report.expected == len(features)
    for i, stage in enumerate(network.TRUNK_STAGES):
        for k, v in features.items():
            if k.startswith(f"{i}."):
                assert torch.equal(v, expected[f"{stage}.{k.partition('.')[2]}"]), k
    # the embedding head DDAMFN cuts off is reported by name, not dropped silently
    assert set(report.unexpected) == {k for k in expected if k.split(".")[0] in network.MFN_HEAD}
    assert "conv_6_dw.conv.weight" in report.unexpected


def test_wrong_file_names_the_keys(task, tmp_path):
    state = {k: v for k, v in _MixedFeatureNet().state_dict().items() if not k.startswith("conv_5.")}
    state["extra.weight"] = torch.zeros(3)
    path = tmp_path / WEIGHTS
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"conv_5|extra\.weight") as err:
        get_adapter("ddamfn").load_pretrained(task, {WEIGHTS: path})
    assert "conv_5.model.0.CA.bn1.bias" in str(err.value) and "extra.weight" in str(err.value)


def test_converter_refuses_foreign_globals(tmp_path):
    import pickle

    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"x": __import__("os").system}, f, protocol=2)
    with pytest.raises(Exception, match="refusing global"):
        convert(path, tmp_path / "out.pth")
