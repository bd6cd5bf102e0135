"""The shared backbones (IR-50, MobileFaceNet, ResNet-18) and the loading of published files (load_into)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from common.adapter import LoadReport
from common.backbones.ir50 import IR50, BottleneckIR, load_ir50, remap_key
from common.backbones.mobilefacenet import MobileFaceNet, load_mobilefacenet
from common.backbones.resnet18 import resnet18
from common.checkpoint import load_into
from tests.parity import fill_state_dict, key_table


def _randomise(module: torch.nn.Module, seed: int = 0) -> None:
    """Distinct values everywhere (BatchNorm statistics included), so a wrong mapping shows."""
    module.load_state_dict(fill_state_dict(key_table(module.state_dict()), seed))


def _full_ir50_file(net: IR50) -> dict[str, torch.Tensor]:
    """What the published ir50.pth holds: a whole IR-50 in the `body.N` layout, 4th stage (units 21-23) included."""
    flat = IR50(split=False)
    flat.load_state_dict(_as_layout(net.state_dict(), split=False))
    state = dict(flat.state_dict())
    for i, unit in enumerate([BottleneckIR(256, 512, 2), BottleneckIR(512, 512, 1), BottleneckIR(512, 512, 1)]):
        state.update({f"body.{21 + i}.{k}": v for k, v in unit.state_dict().items()})
    return state


def _as_layout(state: dict[str, torch.Tensor], split: bool) -> dict[str, torch.Tensor]:
    return {remap_key(k, split): v for k, v in state.items()}


@pytest.fixture(scope="module")
def ir50_split() -> IR50:
    torch.manual_seed(0)
    net = IR50(split=True)
    _randomise(net)
    return net.eval()


def test_remap_key_both_layouts() -> None:
    assert remap_key("body.0.res_layer.1.weight", split=True) == "body1.0.res_layer.1.weight"
    assert remap_key("body.2.res_layer.0.bias", split=True) == "body1.2.res_layer.0.bias"
    assert remap_key("body.3.shortcut_layer.0.weight", split=True) == "body2.0.shortcut_layer.0.weight"
    assert remap_key("body.6.res_layer.2.weight", split=True) == "body2.3.res_layer.2.weight"
    assert remap_key("body.7.res_layer.4.running_var", split=True) == "body3.0.res_layer.4.running_var"
    assert remap_key("body.20.res_layer.3.weight", split=True) == "body3.13.res_layer.3.weight"
    assert remap_key("body2.1.res_layer.1.weight", split=False) == "body.4.res_layer.1.weight"
    assert remap_key("body3.13.res_layer.1.weight", split=False) == "body.20.res_layer.1.weight"
    assert remap_key("body1.1.res_layer.1.weight", split=True) == "body1.1.res_layer.1.weight"
    assert remap_key("input_layer.0.weight", split=True) == "input_layer.0.weight"
    assert remap_key("output_layer.3.weight", split=False) == "output_layer.3.weight"
    # Units this network does not build, or that cannot exist.
    assert remap_key("body.21.res_layer.1.weight", split=True) is None
    assert remap_key("body.23.res_layer.1.weight", split=False) is None
    assert remap_key("body1.3.res_layer.1.weight", split=True) is None
    assert remap_key("body4.0.res_layer.1.weight", split=False) is None


def test_stage_outputs_and_layouts_agree(ir50_split: IR50) -> None:
    flat = IR50(split=False).eval()
    flat.load_state_dict(_as_layout(ir50_split.state_dict(), split=False))
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        a, b = ir50_split(x), flat(x)
    assert [tuple(t.shape) for t in a] == [(1, 64, 56, 56), (1, 128, 28, 28), (1, 256, 14, 14)]
    for s, t in zip(a, b):
        assert torch.equal(s, t)


@pytest.mark.parametrize("split", [True, False], ids=["into-three-bodies", "into-body.N"])
def test_published_body_n_file_loads_completely(tmp_path: Path, ir50_split: IR50, split: bool, capsys) -> None:
    path = tmp_path / "ir50.pth"
    torch.save(_full_ir50_file(ir50_split), path)
    net = IR50(split=split)
    report = load_ir50(net, path)
    assert (report.loaded, report.expected) == (304, 304)
    assert "loaded 304 of 304 backbone tensors" in capsys.readouterr().out
    # The 4th stage is reported by name, not silently dropped.
    assert sum(k.startswith(("body.21.", "body.22.", "body.23.")) for k in report.unexpected) == 45
    assert "body.22.res_layer.1.weight" in report.unexpected
    expected = _as_layout(ir50_split.state_dict(), split)
    for k, v in net.state_dict().items():
        assert torch.equal(v, expected[k]), k


def test_three_body_file_loads_into_body_n(tmp_path: Path, ir50_split: IR50) -> None:
    path = tmp_path / "ir50.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in ir50_split.state_dict().items()}}, path)
    net = IR50(split=False)
    report = load_ir50(net, path)
    assert (report.loaded, report.expected, report.unexpected) == (304, 304, [])
    assert torch.equal(net.body[7].res_layer[1].weight, ir50_split.body3[0].res_layer[1].weight)


def test_partial_backbone_fails_loudly_unless_allowed(tmp_path: Path, ir50_split: IR50) -> None:
    # Stem and head only: what upstream POSTER++ loaded from ir50.pth (19 of 304 tensors).
    state = {k: v for k, v in ir50_split.state_dict().items() if not k.startswith("body")}
    path = tmp_path / "ir50.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"loaded 19 of 304 tensors.*allow_partial_backbone"):
        load_ir50(IR50(split=True), path)
    report = load_ir50(IR50(split=True), path, allow_partial=True)
    assert report.loaded == 19 and len(report.missing) == 285
    assert "body3.13.res_layer.4.running_mean" in report.missing


def test_file_without_batchnorm_counters_loads(tmp_path: Path, ir50_split: IR50) -> None:
    state = {k: v for k, v in _full_ir50_file(ir50_split).items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "ir50.pth"
    torch.save(state, path)
    report = load_ir50(IR50(split=True), path)
    assert report.loaded == report.expected == 304
    assert any("num_batches_tracked" in note for note in report.notes)


def test_mobilefacenet_strict_load_and_frozen(tmp_path: Path) -> None:
    torch.manual_seed(1)
    source = MobileFaceNet()
    _randomise(source, seed=1)
    path = tmp_path / "mobilefacenet_model_best.pth.tar"
    torch.save({"epoch": 3, "state_dict": source.state_dict()}, path)
    net = MobileFaceNet(frozen=True)
    report = load_mobilefacenet(net, path)
    assert report.loaded == report.expected == len(source.state_dict())
    for k, v in net.state_dict().items():
        assert torch.equal(v, source.state_dict()[k]), k

    assert not any(p.requires_grad for p in net.parameters())
    parent = torch.nn.Sequential(net)
    parent.train()
    assert not any(m.training for m in net.modules()), "a frozen landmark branch must stay in eval mode"
    before = {k: v.clone() for k, v in net.state_dict().items()}
    s3, s4, feat = net(torch.randn(2, 3, 112, 112))
    assert (s3.shape, s4.shape, feat.shape) == ((2, 64, 28, 28), (2, 128, 14, 14), (2, 512, 7, 7))
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items()), "BatchNorm statistics drifted"

    broken = dict(source.state_dict())
    del broken["conv_6_sep.bn.running_mean"]
    torch.save({"state_dict": broken}, path)
    with pytest.raises(ValueError, match="conv_6_sep.bn.running_mean"):
        load_mobilefacenet(MobileFaceNet(frozen=True), path)


def test_unfrozen_mobilefacenet_follows_train_mode() -> None:
    net = MobileFaceNet(frozen=False)
    net.train()
    assert net.training and all(p.requires_grad for p in net.parameters())


def test_converter_makes_a_refused_checkpoint_loadable(tmp_path: Path) -> None:
    import numpy as np

    from common.backbones.convert import convert
    from common.checkpoint import load_state_file

    net = MobileFaceNet()
    src, dst = tmp_path / "legacy.pth.tar", tmp_path / "mobilefacenet_model_best.pth.tar"
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}, "best_nme": np.float64(0.04)}, src)
    with pytest.raises(ValueError, match="cannot be loaded safely"):
        load_state_file(src, key="state_dict")
    assert convert(src, dst) == len(net.state_dict())
    report = load_mobilefacenet(MobileFaceNet(frozen=True), dst)
    assert report.loaded == report.expected


def _two_layers() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))


def test_load_into_allows_only_the_declared_keys(tmp_path: Path) -> None:
    path = tmp_path / "w.pth"
    path.write_bytes(b"x")
    state = {**_two_layers().state_dict(), "fc.weight": torch.zeros(2)}
    del state["1.num_batches_tracked"]
    with pytest.raises(ValueError, match=r"w\.pth does not fit the net: .*1 missing \['1\.num_batches_tracked'\], "
                                         r"1 unexpected \['fc\.weight'\].*Expected two layers\. Run the converter"):
        load_into(_two_layers(), state, files=[path], what="net", layout="two layers", fix="Run the converter.")
    target = _two_layers()
    with torch.no_grad():
        target[0].weight.zero_()
    report = load_into(target, state, files=[path], allow_missing=("*.num_batches_tracked",),
                       allow_unexpected=("fc.*",), what="net")
    assert (report.loaded, report.expected) == (6, 7)
    assert (report.missing, report.unexpected, report.shape_mismatch) == (["1.num_batches_tracked"], ["fc.weight"], [])
    assert torch.equal(target[0].weight, state["0.weight"])


def test_load_into_reports_shape_mismatches_apart_and_loads_nothing_on_error(tmp_path: Path) -> None:
    path = tmp_path / "w.pth"
    path.write_bytes(b"x")
    state = dict(_two_layers().state_dict())
    state["0.weight"] = torch.ones(5, 3)
    target = _two_layers()
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(ValueError, match=r"1 of another shape \['0\.weight \(file \(5, 3\), net \(4, 3\)\)'\]"):
        load_into(target, state, files=[path], allow_missing=("0.weight",), what="net")
    assert all(torch.equal(v, before[k]) for k, v in target.state_dict().items()), "a failed load changed the module"
    # accepted only where the file key may be unused and the module key may stay as initialised
    report = load_into(target, state, files=[path], allow_missing=("0.weight",), allow_unexpected=("0.weight",))
    assert report.unexpected == [] and report.missing == ["0.weight"]
    assert report.shape_mismatch == [{"key": "0.weight", "module_key": "0.weight", "expected": [4, 3], "file": [5, 3]}]
    assert torch.equal(target[0].weight, before["0.weight"]) and torch.equal(target[0].bias, state["0.bias"])


def test_load_report_merge() -> None:
    a = LoadReport(files=["a"], sha256=["1"], loaded=2, expected=3, missing=["m"], notes=["na"])
    b = LoadReport(files=["b"], sha256=["2"], loaded=4, expected=4, unexpected=["u"],
                   shape_mismatch=[{"key": "k", "module_key": "k", "expected": [1], "file": [2]}])
    both = a.merge(b, "both")
    assert (both.files, both.sha256, both.loaded, both.expected) == (["a", "b"], ["1", "2"], 6, 7)
    assert (both.missing, both.unexpected, both.notes) == (["m"], ["u"], ["na", "both"])
    assert both.shape_mismatch == b.shape_mismatch and a.files == ["a"]


def test_resnet18_draws_torchvision_resnet18s_initial_weights() -> None:
    """DAN was built on torchvision's resnet18, Ada-DF on timm's; the one builder both use now must
    start from the same weights for a seed, under the same names (runs from scratch unchanged)."""
    from torchvision.models import resnet18 as tv_resnet18

    torch.manual_seed(3)
    ours = resnet18(7).state_dict()
    torch.manual_seed(3)
    theirs = tv_resnet18(weights=None, num_classes=7).state_dict()
    assert list(ours) == list(theirs)
    assert all(torch.equal(v, theirs[k]) for k, v in ours.items())
    x = torch.randn(2, 3, 64, 64)
    net, ref = resnet18(7).eval(), tv_resnet18(weights=None, num_classes=7).eval()
    ref.load_state_dict(net.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(net(x), ref(x))
