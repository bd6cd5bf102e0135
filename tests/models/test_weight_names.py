"""The weight-file name each adapter loads (a module constant) is one its model publishes (config.yaml meta)."""
from __future__ import annotations

import importlib

import pytest

from common import registry
from common.backbones.pretrained import IR50_FILE, LANDMARK_FILE


@pytest.mark.parametrize("name, constant", [
    ("adadf", "models.adadf.adapter.WEIGHTS"), ("dan", "models.dan.adapter.WEIGHTS"),
    ("ddamfn", "models.ddamfn.adapter.WEIGHTS"), ("gsdnet", "models.gsdnet.adapter.WEIGHTS"),
    ("lnsunet", "models.lnsunet.adapter.WEIGHTS"), ("mfer", "models.mfer.weights.WEIGHTS"),
])
def test_the_file_loaded_is_the_file_published(name: str, constant: str) -> None:
    module, _, attr = constant.rpartition(".")
    assert tuple(registry.get_adapter(name).pretrained_files) == (getattr(importlib.import_module(module), attr),)


@pytest.mark.parametrize("name", ["poster", "posterpp"])
def test_poster_models_load_the_shared_ir50_and_landmark_files(name: str) -> None:
    assert tuple(registry.get_adapter(name).pretrained_files) == (IR50_FILE, LANDMARK_FILE)
