"""DAN-specific behaviour: published-weight loading and the loss terms' parameters."""
from __future__ import annotations

import pytest
import torch
from common.backbones.resnet18 import resnet18

from common import registry
from common.config import resolve
from common.errors import ConfigError
from models.dan.adapter import DANConfig


@pytest.fixture
def task():
    torch.manual_seed(0)
    return registry.get_adapter("dan").build(7, resolve("dan", "rafdb"), [1] * 7)


def test_parameter_count(task) -> None:
    assert round(sum(p.numel() for p in task.net.parameters()) / 1e6, 2) == 19.72
    # The class centres are trained: they are parameters of the task, so the optimiser gets them.
    assert any(p is task.affinity.centers for p in task.parameters())
    assert task.affinity.centers.shape == (7, 512)


def test_load_msceleb_checkpoint_format(task, tmp_path) -> None:
    """resnet18_msceleb.pth: {'state_dict': resnet18 keys incl. the 1000-way fc}."""
    torch.manual_seed(1)
    source = resnet18().state_dict()
    path = tmp_path / "resnet18_msceleb.pth"
    torch.save({"state_dict": source, "epoch": 30}, path)
    report = registry.get_adapter("dan").load_pretrained(task, {"resnet18_msceleb.pth": path})
    trunk = task.net.features.state_dict()
    assert report.loaded == report.expected == len(trunk) == len(source) - 2
    assert sorted(report.unexpected) == ["fc.bias", "fc.weight"]
    assert torch.equal(trunk["0.weight"], source["conv1.weight"])
    assert torch.equal(trunk["7.1.bn2.running_var"], source["layer4.1.bn2.running_var"])
    assert len(report.sha256[0]) == 64


def test_incomplete_checkpoint_names_missing_keys(task, tmp_path) -> None:
    source = resnet18().state_dict()
    del source["layer3.0.conv1.weight"]
    path = tmp_path / "resnet18_msceleb.pth"
    torch.save({"state_dict": source}, path)
    with pytest.raises(ValueError, match=r"6\.0\.conv1\.weight"):
        registry.get_adapter("dan").load_pretrained(task, {"resnet18_msceleb.pth": path})


def test_pickled_objects_are_refused(task, tmp_path) -> None:
    path = tmp_path / "resnet18_msceleb.pth"
    torch.save({"state_dict": resnet18()}, path)  # a whole module: needs unpickling code
    with pytest.raises(ValueError, match="cannot be loaded safely"):
        registry.get_adapter("dan").load_pretrained(task, {"resnet18_msceleb.pth": path})


def test_loss_terms(task) -> None:
    task.train()
    x, y = torch.randn(4, 3, 112, 112), torch.tensor([0, 1, 1, 6])
    out = task(x, y)
    assert torch.allclose(out["loss"], out["ce"] + out["affinity"] + out["partition"])
    assert out["affinity"] > 0 and out["partition"] > 0


def test_config_names_a_bad_key_or_type() -> None:
    with pytest.raises(ConfigError, match=r"unknown keys \['num_head'\].*valid keys: num_heads, affinity_weight"):
        DANConfig.from_cfg({"num_head": 4, "affinity_weight": 1.0, "partition_weight": 1.0})
    with pytest.raises(ConfigError, match=r"model.num_heads=2.5: expected int"):
        DANConfig.from_cfg({"num_heads": 2.5, "affinity_weight": 1.0, "partition_weight": 1.0})
    assert DANConfig.from_cfg({"num_heads": 4, "affinity_weight": 1, "partition_weight": 0}).affinity_weight == 1.0
