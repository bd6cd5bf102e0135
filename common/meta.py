"""Model facts as data: the `meta:` section of models/<name>/config.yaml.

    meta:
      display_name: POSTER++          # how tables, plots and pages name the model (default: the folder name)
      input: {size: 112, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], interpolation: bilinear}
      pretrained_files: [ir50.pth, mobilefacenet_model_best.pth.tar]   # the authors' published weights
      pretrained_aliases: {mobilefacenet_model_best.pth.tar: [mobilefacenet_model_best.pth]}

Torch-free: the harness reads display names and weight files from here to plan runs and render
tables without importing model code, and the Adapter base class derives `input_spec`,
`pretrained_files`, `pretrained_aliases` and `display_name` from the same section, so each fact is
written once, as data, in the model's folder (a model kept outside the repository, FER_MODELS_PATH,
works the same way). Every key is optional; unknown keys and wrong types are errors naming the file.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from common.config import load_yaml, model_config, model_dirs
from common.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The resize modes common/transforms.py maps to torchvision's; checked here so a typo fails at plan time.
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
META_KEYS = ("display_name", "input", "pretrained_files", "pretrained_aliases")
INPUT_KEYS = ("size", "mean", "std", "interpolation")


@dataclass(frozen=True)
class InputSpec:
    """What the network expects. Images are always RGB; config `data.image_size` overrides size."""

    size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"


@dataclass(frozen=True)
class ModelMeta:
    display_name: str
    input: InputSpec = InputSpec()
    # File names of the authors' published weights, looked up in the weights folder.
    pretrained_files: tuple[str, ...] = ()
    # Other names the same file is published under (e.g. a README and a script that disagree).
    pretrained_aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)


def model_meta(model: str) -> ModelMeta:
    """The parsed `meta:` section of `model`'s config.yaml (cached until the file changes)."""
    folder = model_dirs().get(model)
    if folder is None:
        model_config(model)  # raises the unknown-model error listing the valid models
    path = folder / "config.yaml"
    st = path.stat()
    return _read(str(path), st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=64)
def _read(path: str, mtime_ns: int, size: int) -> ModelMeta:
    return parse_meta(load_yaml(Path(path)).get("meta"), path, Path(path).parent.name)


def parse_meta(raw: Any, where: str, folder_name: str) -> ModelMeta:
    """Validate a `meta:` mapping strictly; `where` (the file) and the key are named in every error."""
    meta = _mapping(raw, where, "meta", META_KEYS)
    files = tuple(_strings(meta.get("pretrained_files", []), where, "meta.pretrained_files"))
    if len(set(files)) != len(files):
        raise ConfigError(f"{where}: meta.pretrained_files lists a file twice: {list(files)}")
    aliases = {}
    for name, others in _mapping(meta.get("pretrained_aliases"), where, "meta.pretrained_aliases", None).items():
        if name not in files:
            raise ConfigError(f"{where}: meta.pretrained_aliases names {name!r}, which is not one of "
                              f"meta.pretrained_files: {', '.join(files) or '(none)'}")
        aliases[name] = tuple(_strings(others, where, f"meta.pretrained_aliases.{name}"))
    display = meta.get("display_name", folder_name)
    if not isinstance(display, str) or not display.strip():
        raise ConfigError(f"{where}: meta.display_name must be a non-empty string, got {display!r}")
    return ModelMeta(display, _input_spec(meta.get("input"), where), files, aliases)


def _input_spec(raw: Any, where: str) -> InputSpec:
    spec = _mapping(raw, where, "meta.input", INPUT_KEYS)
    size = spec.get("size", InputSpec.size)
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise ConfigError(f"{where}: meta.input.size must be a positive integer (pixels), got {size!r}")
    mean = _triple(spec.get("mean", IMAGENET_MEAN), where, "meta.input.mean")
    std = _triple(spec.get("std", IMAGENET_STD), where, "meta.input.std")
    if min(std) <= 0:
        raise ConfigError(f"{where}: meta.input.std must be positive, got {list(std)}")
    interpolation = spec.get("interpolation", InputSpec.interpolation)
    if interpolation not in INTERPOLATIONS:
        raise ConfigError(f"{where}: meta.input.interpolation {interpolation!r} unknown; "
                          f"valid: {', '.join(INTERPOLATIONS)}")
    return InputSpec(size, mean, std, interpolation)


def _mapping(raw: Any, where: str, key: str, valid: tuple[str, ...] | None) -> dict[str, Any]:
    """`raw` as a dict (None = empty); with `valid`, a key outside it is an error listing the valid keys."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: {key} must be a mapping, got {type(raw).__name__} {raw!r}")
    unknown = [k for k in raw if valid is not None and k not in valid]
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(f'{key}.{k}' for k in unknown)}; "
                          f"valid keys of {key}: {', '.join(valid)}")
    return raw


def _strings(raw: Any, where: str, key: str) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(x, str) and x for x in raw):
        raise ConfigError(f"{where}: {key} must be a list of file names, got {raw!r}")
    return raw


def _triple(raw: Any, where: str, key: str) -> tuple[float, float, float]:
    """Three per-channel numbers (R, G, B); YAML ints such as 0 or 1 are accepted, booleans are not."""
    ok = isinstance(raw, (list, tuple)) and len(raw) == 3 and all(
        isinstance(x, (int, float)) and not isinstance(x, bool) for x in raw)
    if not ok:
        raise ConfigError(f"{where}: {key} must be three numbers (R, G, B), got {raw!r}")
    return tuple(float(x) for x in raw)  # type: ignore[return-value]
