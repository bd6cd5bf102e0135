"""MFER-specific behaviour: the loss terms, the DSF stand-in, Facebook-layout ConvNeXt-B weights.

ConvNeXt-B + DS attention has 155M parameters, so one network is built per module and inputs are 64 px.
"""
from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F

from common.config import resolve
from common.errors import ConfigError
from common.registry import get_adapter
from models.mfer.adapter import MFERConfig, MFERTask
from models.mfer.losses import DSFStandIn
from models.mfer.network import _same_conv
from models.mfer.weights import fb_to_ours, new_module_keys

MODEL_CFG = {"drop_path_rate": 0.0, "label_smoothing": 0.1, "dsf": "smooth_center", "dsf_weight": 1e-3,
             "dsf_smoothing": 0.1}


@pytest.fixture(scope="module")
def task() -> MFERTask:
    torch.manual_seed(0)
    return MFERTask(7, MFERConfig.from_cfg(MODEL_CFG))


def ours_to_fb(key: str) -> str | None:
    """Facebook's ConvNeXt name of one of our trunk keys (None: a module ImageNet files do not have)."""
    if key.startswith("msc.") or re.match(r"backbone\.stages\.(2\.blocks\.27|3\.blocks\.3)\.", key):
        return None
    key = key.removeprefix("backbone.")
    key = re.sub(r"^stem\.", "downsample_layers.0.", key)
    key = re.sub(r"^stages\.(\d)\.downsample\.", r"downsample_layers.\1.", key)
    key = re.sub(r"^stages\.(\d)\.blocks\.", r"stages.\1.", key)
    key = key.replace("conv_dw.", "dwconv.").replace("mlp.fc1.", "pwconv1.").replace("mlp.fc2.", "pwconv2.")
    return re.sub(r"^head\.norm\.", "norm.", key)


def test_parameter_count(task: MFERTask) -> None:
    trunk = sum(p.numel() for n, p in task.net.named_parameters() if not n.startswith("msc."))
    heads = sum(p.numel() for p in task.net.msc.parameters())
    assert (trunk, heads) == (153_438_016, 1_918_997)  # the authors' convnext_base + Msc, 7 classes
    assert task.dsf.centers.shape == (7, 1024)


def test_loss_is_the_sum_of_head_losses_and_the_weighted_dsf(task: MFERTask) -> None:
    x, y = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 3, 6, 3])
    with torch.no_grad():
        task.dsf.centers.normal_(0, 1)  # distinct centres, so both DSF terms are non-trivial
    task.eval()  # no drop path: the same function twice
    with torch.no_grad():
        out = task(x, y)
        heads, feat = task.net(x)
        msc = sum(F.cross_entropy(h, y, label_smoothing=0.1) for h in heads)
        d = 0.5 * torch.cdist(feat, task.dsf.centers).pow(2)
        dsf = d[torch.arange(4), y].mean() + F.cross_entropy(-d, y, label_smoothing=0.1)
        torch.testing.assert_close(out["loss"], msc + 1e-3 * dsf, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(out["logits"], heads[0] + heads[1] + heads[2])
        torch.testing.assert_close(task.predict(x), out["logits"])
    assert [h.shape for h in heads] == [(4, 7)] * 3 and feat.shape == (4, 1024)
    # heads read the leading 512 / 768 / 1024 channels: changing channel 800 moves only the last head
    feat2 = feat.clone()
    feat2[:, 800] += 5.0
    with torch.no_grad():
        moved = [not torch.equal(head(feat), head(feat2)) for head in task.net.msc]
    assert moved == [False, False, True]


def test_dsf_modes() -> None:
    feat = torch.randn(6, 1024, generator=torch.Generator().manual_seed(2))
    y = torch.tensor([0, 1, 1, 2, 0, 1])
    smooth = DSFStandIn(4, 1024, "smooth_center")
    out = smooth(feat, y)
    # zero-initialised centres: a uniform distance posterior, and the centre term is ||f||^2 / 2
    torch.testing.assert_close(out["dsf_smooth"], torch.log(torch.tensor(4.0)))
    torch.testing.assert_close(out["dsf_center"], 0.5 * feat.pow(2).sum(1).mean())
    out["dsf"].backward()
    assert torch.all(smooth.centers.grad.abs().sum(1) > 0), "every centre, even of an absent class, must move"

    centre_only = DSFStandIn(4, 1024, "center")
    assert set(centre_only(feat, y)) == {"dsf_center", "dsf"}
    with pytest.raises(ValueError, match="smooth_center, center"):
        DSFStandIn(4, 1024, "lgm")


def test_dsf_switch_in_the_task() -> None:
    cfg = resolve("mfer", "synthetic", "full", {"model": {"dsf": "none"}})
    with torch.device("meta"):  # structure only: skips initialising 155M parameters
        task = get_adapter("mfer").build(7, cfg, [1] * 7)
    assert task.dsf is None and not any("centers" in n for n, _ in task.named_parameters())
    with pytest.raises(ValueError, match="smooth_center, center, none"):
        MFERConfig.from_cfg({**MODEL_CFG, "dsf": "dsf"})


@pytest.mark.parametrize("hw", [(1, 1), (2, 2), (3, 2), (7, 7)])
def test_cropped_ds_conv_equals_the_dense_7x7_conv(hw: tuple[int, int]) -> None:
    """On maps smaller than the kernel only the central taps meet pixels: same output, same gradients."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(8, 8, 7, padding=3)
    x = torch.randn(2, 8, *hw, requires_grad=True)
    dense = conv(x)
    g_dense = torch.autograd.grad(dense.pow(2).sum(), [x, conv.weight, conv.bias])
    cropped = _same_conv(conv, x)
    g_cropped = torch.autograd.grad(cropped.pow(2).sum(), [x, conv.weight, conv.bias])
    torch.testing.assert_close(cropped, dense)
    for a, b in zip(g_cropped, g_dense):
        torch.testing.assert_close(a, b)


def test_config_resolves_for_every_dataset_and_profile() -> None:
    for profile in ("full", "quick"):
        for ds in ("rafdb", "fer2013", "ferplus", "expw", "sfew", "ckplus", "synthetic"):
            cfg = resolve("mfer", ds, profile)
            assert cfg["model"]["dsf"] == "smooth_center"
    assert resolve("mfer", "rafdb", "full")["train"]["batch_size"] == 128
    assert resolve("mfer", "sfew", "full")["train"]["t_max"] == 100
    with pytest.raises(ConfigError, match="dsf_weight"):
        resolve("mfer", "rafdb", "full", {"model": {"dsf_wieght": 1.0}})


def test_fb_remap_names() -> None:
    assert fb_to_ours("downsample_layers.0.1.weight") == "backbone.stem.1.weight"
    assert fb_to_ours("downsample_layers.3.1.bias") == "backbone.stages.3.downsample.1.bias"
    assert fb_to_ours("stages.2.26.pwconv2.weight") == "backbone.stages.2.blocks.26.mlp.fc2.weight"
    assert fb_to_ours("stages.2.27.attn.weight") == "backbone.stages.2.blocks.27.attn.weight"  # authors' DS attention
    assert fb_to_ours("stages.0.0.dwconv.bias") == "backbone.stages.0.blocks.0.conv_dw.bias"
    assert fb_to_ours("norm.weight") == "backbone.head.norm.weight"
    assert fb_to_ours("head.weight") is None
    assert fb_to_ours("stages.1.blocks.0.conv_dw.weight") == "backbone.stages.1.blocks.0.conv_dw.weight"  # timm file


def test_imagenet_convnext_b_file_in_facebook_layout_loads(task: MFERTask, tmp_path) -> None:
    """A file with Facebook's ConvNeXt-B names and shapes ({"model": ...}, as convnext_base_1k_224_ema.pth)."""
    adapter = get_adapter("mfer")
    g = torch.Generator().manual_seed(3)
    fb = {ours_to_fb(k): torch.randn(v.shape, generator=g) for k, v in task.net.state_dict().items() if ours_to_fb(k)}
    fb["head.weight"], fb["head.bias"] = torch.zeros(1000, 1024), torch.zeros(1000)
    assert len(fb) == 344 and "stages.2.26.pwconv1.weight" in fb and "downsample_layers.1.0.weight" in fb
    path = tmp_path / adapter.pretrained_files[0]
    torch.save({"model": fb, "optimizer": {}}, path)

    report = adapter.load_pretrained(task, {path.name: path})
    sd = task.net.state_dict()
    for k, v in fb.items():
        if fb_to_ours(k):
            assert torch.equal(sd[fb_to_ours(k)], v), k
    assert report.loaded == 342 and report.expected == 374
    assert set(report.missing) == new_module_keys(task.net) and len(report.missing) == 32
    assert sorted(report.unexpected) == ["head.bias", "head.weight"]
    assert any("backbone.stages.3.blocks.3.attn.weight" in n for n in report.notes)
    assert any("head.weight" in n for n in report.notes)
    assert len(report.sha256) == 1 and len(report.sha256[0]) == 64


def test_a_file_that_is_not_convnext_b_names_its_bad_keys(task: MFERTask, tmp_path) -> None:
    path = tmp_path / "wrong.pth"
    torch.save({"model": {"norm.weight": torch.ones(1024), "layer1.0.conv1.weight": torch.ones(64, 64, 3, 3)}}, path)
    with pytest.raises(ValueError, match=r"missing.*backbone\.head\.norm\.bias.*unexpected.*layer1\.0\.conv1\.weight"):
        get_adapter("mfer").load_pretrained(task, {"convnext_base_1k_224_ema.pth": path})
