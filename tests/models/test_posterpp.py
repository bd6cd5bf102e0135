"""POSTER++ specifics: one network for any class count, parameter counts, the ir50.pth remap, frozen landmarks."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from common import registry
from common.backbones.ir50 import remap_key
from common.config import resolve
from tests.models.reach import parameters_reaching_output
from models.posterpp.adapter import PosterV2Task
from models.posterpp.network import UNUSED_PREFIXES


@pytest.fixture(scope="module")
def task() -> PosterV2Task:
    torch.manual_seed(0)
    return registry.get_adapter("posterpp").build(7, resolve("posterpp", "synthetic", "full"), [1] * 7)


def test_parameter_counts_match_the_authors(task: PosterV2Task) -> None:
    # 58.32M in the authors' class; 43.75M of them reach the logits (counted by instantiating the authors' class).
    assert sum(p.numel() for p in task.net.parameters()) == 58_316_594
    net = task.net
    flags = {n: p.requires_grad for n, p in net.named_parameters()}
    used, unused = parameters_reaching_output(net, lambda n: n(torch.randn(1, 3, 112, 112)))
    assert round(used / 1e6, 2) == 43.75
    # Unused parameters are exactly the listed ones; what trains = the rest, minus the frozen landmarks.
    assert unused == {n for n in flags if n.startswith(UNUSED_PREFIXES)}
    assert {n for n, f in flags.items() if f} == {
        n for n in flags if n not in unused and not n.startswith("face_landback.")}


def test_any_class_count() -> None:
    # Upstream's 7-class file always builds a 7-way head; here the head follows num_classes.
    task = registry.get_adapter("posterpp").build(8, resolve("posterpp", "ferplus", "full"), [1] * 8)
    assert task.net.VIT.head.linear.out_features == 8
    task.eval()
    with torch.no_grad():
        assert task.predict(torch.randn(2, 3, 112, 112)).shape == (2, 8)
        assert task.predict(torch.randn(1, 3, 48, 48)).shape == (1, 8)  # FER2013 is fed at 48 px


def test_loss_is_cross_entropy_and_landmarks_stay_frozen(task: PosterV2Task) -> None:
    lm = task.net.face_landback
    before = {k: v.clone() for k, v in lm.state_dict().items()}
    task.train()
    assert task.net.ir_back.training and not any(m.training for m in lm.modules())
    x, y = torch.randn(2, 3, 112, 112), torch.tensor([2, 5])
    with torch.no_grad():
        out = task(x, y)
    assert torch.allclose(out["loss"], F.cross_entropy(out["logits"], y))
    assert all(torch.equal(v, before[k]) for k, v in lm.state_dict().items())
    assert not any(p.requires_grad for p in lm.parameters())


@pytest.mark.parametrize("layout", ["body.N", "three-body"])
def test_ir50_loads_completely_in_either_layout(tmp_path: Path, task: PosterV2Task, layout: str, capsys) -> None:
    """The published ir50.pth has `body.N` keys; upstream loaded only its stem and head (19 of 304)."""
    adapter = registry.get_adapter("posterpp")
    g = torch.Generator().manual_seed(5)
    ir = {k: torch.rand(v.shape, generator=g).to(v.dtype) for k, v in task.net.ir_back.state_dict().items()}
    on_disk = {remap_key(k, split=False): v for k, v in ir.items()} if layout == "body.N" else ir
    lm = {k: torch.rand(v.shape, generator=g).to(v.dtype) for k, v in task.net.face_landback.state_dict().items()}
    paths = {"ir50.pth": tmp_path / "ir50.pth", "mobilefacenet_model_best.pth.tar": tmp_path / "lm.pth.tar"}
    torch.save(on_disk, paths["ir50.pth"])
    torch.save({"state_dict": lm}, paths["mobilefacenet_model_best.pth.tar"])
    report = adapter.load_pretrained(task, paths)
    assert "loaded 304 of 304 backbone tensors" in capsys.readouterr().out
    assert report.loaded == report.expected == 304 + len(lm) and not report.unexpected
    for k, v in task.net.ir_back.state_dict().items():
        assert torch.equal(v, ir[k]), k
    assert torch.equal(task.net.face_landback.conv1.conv.weight, lm["conv1.conv.weight"])


def test_partial_ir50_fails_unless_config_allows(tmp_path: Path, task: PosterV2Task) -> None:
    stem_only = {k: v for k, v in task.net.ir_back.state_dict().items() if not k.startswith("body")}
    torch.save(stem_only, tmp_path / "ir50.pth")
    from common.backbones.mobilefacenet import MobileFaceNet

    torch.save({"state_dict": MobileFaceNet().state_dict()}, tmp_path / "lm.pth.tar")
    paths = {"ir50.pth": tmp_path / "ir50.pth", "mobilefacenet_model_best.pth.tar": tmp_path / "lm.pth.tar"}
    adapter = registry.get_adapter("posterpp")
    strict = adapter.build(7, resolve("posterpp", "synthetic", "full"), [1] * 7)
    with pytest.raises(ValueError, match="loaded 19 of 304 tensors"):
        adapter.load_pretrained(strict, paths)
    lenient = adapter.build(7, resolve("posterpp", "synthetic", "full", {"model": {"allow_partial_backbone": True}}), [1] * 7)
    report = adapter.load_pretrained(lenient, paths)
    assert report.loaded == 19 + len(MobileFaceNet().state_dict()) and len(report.missing) == 285
