"""POSTER specifics: the loss terms, parameter counts, the frozen landmark branch, weight files."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from common import registry
from common.backbones.ir50 import BottleneckIR
from common.config import resolve
from common.fingerprint import resolve_weights
from tests.models.reach import parameters_reaching_output
from models.poster.adapter import PosterTask
from models.poster.network import UNUSED_PREFIXES

@pytest.fixture(scope="module")
def task() -> PosterTask:
    torch.manual_seed(0)
    return registry.get_adapter("poster").build(7, resolve("poster", "synthetic", "full"), [1] * 7)


def test_parameter_counts_match_the_authors(task: PosterTask) -> None:
    # 71.85M in the authors' class at 7 classes; 58.91M of them reach the logits (counted by instantiating the authors' class).
    assert sum(p.numel() for p in task.net.parameters()) == 71_850_399
    net = task.net
    flags = {n: p.requires_grad for n, p in net.named_parameters()}
    used, unused = parameters_reaching_output(net, lambda n: n(torch.randn(1, 3, 112, 112))[0])
    assert round(used / 1e6, 2) == 58.91
    # Unused parameters are exactly the listed ones; what trains = the rest, minus the frozen landmarks.
    assert unused == {n for n in flags if n.startswith(UNUSED_PREFIXES)}
    assert {n for n, f in flags.items() if f} == {
        n for n in flags if n not in unused and not n.startswith("face_landback.")}


def test_loss_is_ce_plus_twice_label_smoothing(task: PosterTask) -> None:
    x, y = torch.randn(2, 3, 112, 112), torch.tensor([0, 6])
    task.eval()
    with torch.no_grad():
        out = task(x, y)
    logits = out["logits"]
    logp = F.log_softmax(logits, dim=1)
    # The reference suite's LabelSmoothingCrossEntropy(0.2): 0.8 * NLL + 0.2 * mean over classes of -log p.
    lsce = (0.8 * -logp.gather(1, y[:, None])[:, 0] + 0.2 * -logp.mean(1)).mean()
    expected = F.cross_entropy(logits, y) + 2 * lsce
    assert torch.allclose(out["loss"], expected, atol=1e-6)
    assert torch.allclose(out["lsce"], lsce, atol=1e-6)


def test_landmark_branch_frozen_in_training(task: PosterTask) -> None:
    lm = task.net.face_landback
    before = {k: v.clone() for k, v in lm.state_dict().items()}
    task.train()
    assert task.net.ir_back.training and not any(m.training for m in lm.modules())
    assert not any(p.requires_grad for p in lm.parameters())
    with torch.no_grad():
        task(torch.randn(2, 3, 112, 112), torch.tensor([1, 2]))
    assert all(torch.equal(v, before[k]) for k, v in lm.state_dict().items())


def _write_weights(task: PosterTask, folder: Path, landmark_name: str) -> dict[str, Path]:
    """The published formats: ir50.pth a whole IR-50 in the `body.N` layout (4th stage included),
    the landmark file {'state_dict': ...} as saved by its training script."""
    g = torch.Generator().manual_seed(3)
    ir = {k: torch.rand(v.shape, generator=g).to(v.dtype) for k, v in task.net.ir_back.state_dict().items()}
    for i, unit in enumerate([BottleneckIR(256, 512, 2), BottleneckIR(512, 512, 1), BottleneckIR(512, 512, 1)]):
        ir.update({f"body.{21 + i}.{k}": v for k, v in unit.state_dict().items()})
    lm = {k: torch.rand(v.shape, generator=g).to(v.dtype) for k, v in task.net.face_landback.state_dict().items()}
    paths = {"ir50.pth": folder / "ir50.pth", landmark_name: folder / landmark_name}
    torch.save(ir, paths["ir50.pth"])
    torch.save({"epoch": 10, "state_dict": lm}, paths[landmark_name])
    return paths


def test_load_pretrained_published_formats(tmp_path: Path, capsys) -> None:
    adapter = registry.get_adapter("poster")
    task = adapter.build(7, resolve("poster", "synthetic", "full"), [1] * 7)
    paths = _write_weights(task, tmp_path, "mobilefacenet_model_best.pth.tar")
    report = adapter.load_pretrained(task, paths)
    n_lm = len(task.net.face_landback.state_dict())
    assert (report.loaded, report.expected) == (304 + n_lm, 304 + n_lm)
    assert "loaded 304 of 304 backbone tensors" in capsys.readouterr().out
    assert "body.21.res_layer.1.weight" in report.unexpected  # the unused 4th stage, by name
    saved = torch.load(paths["ir50.pth"], weights_only=True)
    assert torch.equal(task.net.ir_back.body[20].res_layer[3].weight, saved["body.20.res_layer.3.weight"])
    saved_lm = torch.load(paths["mobilefacenet_model_best.pth.tar"], weights_only=True)["state_dict"]
    assert torch.equal(task.net.face_landback.conv_6_sep.conv.weight, saved_lm["conv_6_sep.conv.weight"])
    assert len(report.sha256) == 2 and all(len(h) == 64 for h in report.sha256)
    # The reference suite's README names the landmark file without ".tar": accepted too.
    alias = paths["mobilefacenet_model_best.pth.tar"].rename(tmp_path / "mobilefacenet_model_best.pth")
    assert "mobilefacenet_model_best.pth" in adapter.pretrained_aliases["mobilefacenet_model_best.pth.tar"]
    cfg = resolve("poster", "synthetic", "full", {"pretrained": str(tmp_path)})
    found = resolve_weights("poster", adapter.pretrained_files, adapter.pretrained_aliases, cfg)
    assert found == {"ir50.pth": paths["ir50.pth"], "mobilefacenet_model_best.pth.tar": alias}
    report = adapter.load_pretrained(task, found)
    assert report.loaded == report.expected and report.files[1] == str(alias)


def test_variants_and_class_count() -> None:
    cfg = resolve("poster", "synthetic", "full", {"model": {"variant": "small"}})
    task = registry.get_adapter("poster").build(8, cfg, [1] * 8)
    assert len(task.net.pyramid_fuse.blocks) == 4
    task.eval()
    with torch.no_grad():
        assert task.predict(torch.randn(1, 3, 224, 224)).shape == (1, 8)
    with pytest.raises(ValueError, match="variant 'huge' unknown; valid: small, base, large"):
        registry.get_adapter("poster").build(7, resolve("poster", "synthetic", "full", {"model": {"variant": "huge"}}), [1] * 7)
