import pytest

from common.config import parse_overrides, resolve
from common.errors import ConfigError


def test_dataset_override_and_profile_order() -> None:
    full = resolve("dan", "sfew", "full")
    assert full["data"]["image_size"] == 112 and full["train"]["batch_size"] == 32 and full["train"]["t_max"] == 100
    assert resolve("dan", "rafdb", "full")["train"]["batch_size"] == 128
    quick = resolve("dan", "rafdb", "quick")
    # The quick profile wins over the recipe; the model's own quick refinement wins over the profile.
    assert quick["train"]["epochs"] == 3 and quick["data"]["image_size"] == 64 and quick["train"]["batch_size"] == 16
    assert quick["train"]["lr"] == 2e-3 and full["train"]["lr"] == 1e-3
    assert quick["augment"]["erasing"] == 0.0 and full["augment"]["erasing"] == 0.5


def test_command_line_overrides_win() -> None:
    cfg = resolve("dan", "rafdb", "full", parse_overrides("train.lr=1e-4 model.num_heads=2 augment.erasing_scale=[0.1,0.2]"))
    assert cfg["train"]["lr"] == 1e-4 and cfg["model"]["num_heads"] == 2
    assert cfg["augment"]["erasing_scale"] == [0.1, 0.2]


@pytest.mark.parametrize("override, message", [
    ("train.lrr=1", r"unknown config key 'train.lrr'; valid keys here: .*lr"),
    ("model.heads=2", r"unknown config key 'model.heads'; valid keys here: .*num_heads"),
    ("train.optimizer=lamb", r"train.optimizer='lamb' is not valid; choose one of adamw, adam, sgd"),
    ("train.epochs=0", r"train.epochs=0 is not valid; give an integer >= 1"),
    ("train=3", r"'train' is a section"),
])
def test_bad_overrides_are_errors(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve("dan", "rafdb", "full", parse_overrides(override))


def test_unknown_names() -> None:
    with pytest.raises(ConfigError, match=r"unknown model 'resnet'; valid models: .*dan"):
        resolve("resnet", "rafdb")
    with pytest.raises(ConfigError, match=r"unknown profile 'fast'; valid profiles: full, quick"):
        resolve("dan", "rafdb", "fast")
    with pytest.raises(ConfigError, match="not key=value"):
        parse_overrides(["train.lr"])
