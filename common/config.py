"""Config resolution: YAML defaults, profiles, the model's config.yaml, command-line overrides.

Torch-free: the harness resolves configs to plan runs and to hash specs.
"""
from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = ROOT / "models"
_DEFAULTS = Path(__file__).with_name("defaults.yaml")
_PROFILES = Path(__file__).with_name("profiles.yaml")
MODEL_CONFIG_SECTIONS = ("defaults", "model", "datasets", "profiles")


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads 1e-4 as a float (YAML 1.1 wants 1.0e-4; people write 1e-4)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def yaml_load(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: no arbitrary objects


class ConfigError(ValueError):
    """A config key or value that is not valid; the message names it and the valid choices."""


def load_yaml(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        data = yaml_load(f.read())
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def merge(base: dict[str, Any], override: dict[str, Any], where: str = "") -> dict[str, Any]:
    """Deep-merge `override` into a copy of `base`; a key absent from `base` is an error."""
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        path = f"{where}.{key}" if where else key
        if key not in out:
            valid = ", ".join(sorted(out)) or "(none)"
            raise ConfigError(f"unknown config key {path!r}; valid keys here: {valid}")
        if isinstance(out[key], dict) and out[key] and isinstance(value, dict):
            out[key] = merge(out[key], value, path)
        elif isinstance(out[key], dict) and out[key] and value is not None:
            raise ConfigError(f"config key {path!r} is a section; give keys under it, not {value!r}")
        else:
            out[key] = copy.deepcopy(value)
    return out


def model_dirs() -> dict[str, Path]:
    """Model folders (those with a config.yaml): models/ plus the folders listed in FER_MODELS_PATH
    (os.pathsep-separated), so a researcher can benchmark a model kept outside this repository."""
    roots = [MODELS_DIR] + [Path(p) for p in os.environ.get("FER_MODELS_PATH", "").split(os.pathsep) if p]
    found: dict[str, Path] = {}
    for root in roots:
        for cfg in sorted(root.glob("*/config.yaml")):
            name = cfg.parent.name
            if name.startswith("_"):
                continue
            if name in found:
                raise ConfigError(f"model {name!r} is defined twice: {found[name]} and {cfg.parent}")
            found[name] = cfg.parent
    return found


def model_names_on_disk() -> list[str]:
    """Models that have a folder with config.yaml (the harness's view: no imports)."""
    return sorted(model_dirs())


def model_config(model: str) -> dict[str, Any]:
    dirs = model_dirs()
    if model not in dirs:
        raise ConfigError(f"unknown model {model!r}; valid models: {', '.join(sorted(dirs))}")
    path = dirs[model] / "config.yaml"
    cfg = load_yaml(path)
    extra = set(cfg) - set(MODEL_CONFIG_SECTIONS)
    if extra:
        raise ConfigError(f"{path}: unknown sections {sorted(extra)}; valid: {', '.join(MODEL_CONFIG_SECTIONS)}")
    return cfg


def profiles() -> dict[str, Any]:
    return load_yaml(_PROFILES)


def profile(name: str) -> dict[str, Any]:
    known = profiles()
    if name not in known:
        raise ConfigError(f"unknown profile {name!r}; valid profiles: {', '.join(known)}")
    return known[name]


def parse_overrides(items: list[str] | str | None) -> dict[str, Any]:
    """Parse `key.sub=value` strings (values are YAML: 1e-4, true, null, [1, 2]) into a nested dict."""
    if not items:
        return {}
    if isinstance(items, str):
        items = items.split()
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not key=value (e.g. train.lr=1e-4)")
        key, raw = item.split("=", 1)
        value = yaml_load(raw) if raw != "" else None
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r} conflicts with another override of {part!r}")
        node[parts[-1]] = value
    return out


def resolve(model: str, dataset: str, profile_name: str = "full",
            overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The full config of one run: every key present, model keys validated against config.yaml."""
    base = load_yaml(_DEFAULTS)
    mcfg = model_config(model)
    base["model"] = copy.deepcopy(mcfg.get("model") or {})
    prof = profile(profile_name)
    where = str(model_dirs()[model] / "config.yaml")
    cfg = merge(base, mcfg.get("defaults") or {}, "")
    cfg = merge(cfg, (mcfg.get("datasets") or {}).get(dataset) or {}, "")
    cfg = merge(cfg, prof.get("overrides") or {}, "")
    mprof = dict((mcfg.get("profiles") or {}).get(profile_name) or {})
    per_dataset = mprof.pop("datasets", None) or {}
    cfg = merge(cfg, mprof, "")
    cfg = merge(cfg, per_dataset.get(dataset) or {}, "")
    unknown_ds = set((mcfg.get("datasets") or {})) - set(_dataset_names())
    if unknown_ds:
        raise ConfigError(f"{where}: unknown datasets {sorted(unknown_ds)}; valid: {', '.join(_dataset_names())}")
    cfg = merge(cfg, overrides or {}, "")
    env_weights = os.environ.get("FER_WEIGHTS_DIR")
    if env_weights and not (overrides or {}).get("weights_dir"):
        cfg["weights_dir"] = env_weights
    _check_values(cfg)
    return cfg


_CHOICES = {
    ("protocol", "strategy"): ("shuffle", "stratified"),
    ("train", "optimizer"): ("adamw", "adam", "sgd"),
    ("train", "scheduler"): ("cosine", "step", "exponential", "none"),
    ("train", "scheduler_step"): ("epoch", "batch"),
}


def _check_values(cfg: dict[str, Any]) -> None:
    for (section, key), valid in _CHOICES.items():
        value = cfg[section][key]
        if value not in valid:
            raise ConfigError(f"{section}.{key}={value!r} is not valid; choose one of {', '.join(valid)}")
    for key in ("epochs", "batch_size", "grad_accum"):
        if not isinstance(cfg["train"][key], int) or cfg["train"][key] < 1:
            raise ConfigError(f"train.{key} must be a positive integer, got {cfg['train'][key]!r}")


def _dataset_names() -> list[str]:
    from common.datasets import dataset_names

    return dataset_names()
