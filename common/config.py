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

from common.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = ROOT / "models"
_DEFAULTS = Path(__file__).with_name("defaults.yaml")
_PROFILES = Path(__file__).with_name("profiles.yaml")
MODEL_CONFIG_SECTIONS = ("meta", "defaults", "model", "datasets", "profiles")


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads 1e-4 as a float (YAML 1.1 wants 1.0e-4; people write 1e-4)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def yaml_load(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: no arbitrary objects


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


def default_profile(datasets: str | list[str]) -> str:
    """The profile when none is given (`make run` and `python -m harness` alike): `quick` when every
    selected dataset is the generated `synthetic` one (a CPU smoke run), `full` (the reference
    protocol) otherwise, `all` included."""
    items = datasets.split(",") if isinstance(datasets, str) else list(datasets)
    items = [i.strip() for i in items if i.strip()]
    return "quick" if items and all(i == "synthetic" for i in items) else "full"


# Where one `key=value` ends in a string of several: whitespace followed by the next `key=`.
# So a list value with spaces (augment.erasing_scale=[0.02, 0.2]) stays whole in SET="...".
_NEXT_KEY = re.compile(r"\s+(?=[A-Za-z_][\w.]*=)")


def split_overrides(items: list[str] | str) -> list[str]:
    """`["a=1 b=[1, 2]", "c=x"]` -> `["a=1", "b=[1, 2]", "c=x"]` (SET arrives as one string)."""
    items = [items] if isinstance(items, str) else list(items)
    return [part for item in items for part in _NEXT_KEY.split(item.strip()) if part]


def parse_overrides(items: list[str] | str | None) -> dict[str, Any]:
    """Parse `key.sub=value` strings (values are YAML: 1e-4, true, null, [1, 2]) into a nested dict."""
    if not items:
        return {}
    out: dict[str, Any] = {}
    for item in split_overrides(items):
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not key=value (e.g. train.lr=1e-4)")
        key, raw = item.split("=", 1)
        try:
            value = yaml_load(raw) if raw.strip() != "" else None
        except yaml.YAMLError as e:
            problem = str(getattr(e, "problem", "") or "not valid YAML")
            raise ConfigError(f"override {item!r}: the value {raw!r} is not valid YAML ({problem}); "
                              "write numbers, true/false, null, or lists as [0.02, 0.2]") from None
        if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", key.strip()):
            raise ConfigError(f"override {item!r}: {key.strip()!r} is not a config key (e.g. train.lr)")
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
    _check_values(cfg, mcfg.get("model") or {})
    return cfg


_CHOICES = {
    ("protocol", "strategy"): ("shuffle", "stratified"),
    ("train", "optimizer"): ("adamw", "adam", "sgd"),
    ("train", "scheduler"): ("cosine", "step", "exponential", "none"),
    ("train", "scheduler_step"): ("epoch", "batch"),
    ("train", "amp_dtype"): ("float16", "bfloat16"),
    ("data", "expw_layout"): ("per-face", "reference"),
}

# Fewest pool samples a run may use: 60/20/20 of 50 leaves a test fold of 10, the least from which
# an accuracy says anything; data.subset=3 would train on one image and still report a number.
MIN_SUBSET = 50

# Type and range of every key of common/defaults.yaml: (kind, low, high, nullable); low/high are
# inclusive bounds, or None. kinds: int, float (ints accepted), bool, str, prob (float in [0, 1]),
# fraction (float in (0, 1)), pair (two floats 0 < a <= b <= 1). A key missing here (a new one) is
# checked against the type of its default, like the model's own keys.
SCHEMA: dict[str, tuple[str, float | None, float | None, bool]] = {
    "data.image_size": ("int", 16, 4096, True),
    "data.exclude_missing": ("bool", None, None, False),
    "data.subset": ("int", MIN_SUBSET, None, True),
    "data.num_workers": ("int", 0, 256, False),
    "data.synthetic.n": ("int", MIN_SUBSET, None, False),
    "data.synthetic.size": ("int", 16, 4096, False),
    "data.synthetic.seed": ("int", 0, None, False),
    "data.synthetic.label_noise": ("float", 0, 0.99, False),
    "protocol.n_splits": ("int", 2, 1000, False),
    "protocol.test_size": ("fraction", None, None, False),
    "protocol.val_size": ("fraction", None, None, False),
    "protocol.random_state": ("int", 0, 2**32 - 1, False),
    "train.epochs": ("int", 1, None, False),
    "train.batch_size": ("int", 1, None, False),
    "train.eval_batch_size": ("int", 1, None, False),
    "train.lr": ("float", 1e-12, 100, False),
    "train.weight_decay": ("float", 0, 100, False),
    "train.momentum": ("prob", None, None, False),
    "train.t_max": ("int", 1, None, False),
    "train.warmup_steps": ("int", 0, None, False),
    "train.step_size": ("int", 1, None, False),
    "train.gamma": ("float", 1e-12, 10, False),
    "train.patience": ("int", 1, None, True),
    "train.grad_clip": ("float", 1e-12, None, True),
    "train.grad_accum": ("int", 1, None, False),
    "train.amp": ("bool", None, None, False),
    "train.drop_last": ("bool", None, None, False),
    "train.device": ("str", None, None, False),
    "train.threads": ("int", 1, 1024, True),
    "train.keep_checkpoint": ("bool", None, None, False),
    "augment.hflip": ("bool", None, None, False),
    "augment.random_apply_p": ("prob", None, None, False),
    "augment.rotation": ("float", 0, 180, False),
    "augment.crop_padding": ("int", 0, 1024, False),
    "augment.randaugment": ("str", None, None, True),
    "augment.erasing": ("prob", None, None, False),
    "augment.erasing_scale": ("pair", None, None, False),
    "pretrained": ("str", None, None, True),
    "weights_dir": ("str", None, None, False),
}
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?|mps")


def _kind_of(default: Any) -> str | None:
    """The kind a key's default implies (a model key, or a common key with no SCHEMA entry)."""
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, int):
        return "int"
    if isinstance(default, float):
        return "float"
    if isinstance(default, str):
        return "str"
    if isinstance(default, list):
        return "list"
    return None  # null default: any value


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_value(key: str, value: Any, kind: str | None, low: float | None = None, high: float | None = None,
                nullable: bool = True) -> None:
    """Raise ConfigError naming the key, the value and what is allowed, if `value` is not of `kind`
    within [low, high]."""
    if value is None:
        if nullable or kind is None:
            return
        raise ConfigError(f"{key}=null is not allowed; give {_allowed(kind, low, high)}")
    ok = {
        "bool": lambda v: isinstance(v, bool),
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "float": _is_number,
        "prob": lambda v: _is_number(v) and 0 <= v <= 1,
        "fraction": lambda v: _is_number(v) and 0 < v < 1,
        "pair": lambda v: (isinstance(v, list) and len(v) == 2 and all(map(_is_number, v))
                           and 0 < v[0] <= v[1] <= 1),
        "str": lambda v: isinstance(v, str),
        "list": lambda v: isinstance(v, list),
    }.get(kind or "", lambda v: True)(value)
    if ok and _is_number(value) and kind in ("int", "float"):
        ok = (low is None or value >= low) and (high is None or value <= high)
    if not ok:
        nul = " or null" if nullable and kind is not None else ""
        raise ConfigError(f"{key}={value!r} is not valid; give {_allowed(kind, low, high)}{nul}")


def _allowed(kind: str | None, low: float | None, high: float | None) -> str:
    if kind in ("int", "float"):
        what = "an integer" if kind == "int" else "a number"
        if low is not None and high is not None:
            return f"{what} in {low:g}..{high:g}"
        if low is not None:
            return f"{what} >= {low:g}"
        return what
    return {"bool": "true or false", "prob": "a number in [0, 1]", "fraction": "a number strictly between 0 and 1",
            "pair": "a list [min, max] with 0 < min <= max <= 1, e.g. [0.02, 0.33]", "str": "a string",
            "list": "a list, e.g. [1, 2]"}.get(kind or "", "any value")


def _flatten(cfg: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in cfg.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(_flatten(value, path + "."))
        else:
            out[path] = value
    return out


def _check_values(cfg: dict[str, Any], model_defaults: dict[str, Any] | None = None) -> None:
    """Every key's type and range (SCHEMA; a model key: the type of its default in config.yaml),
    then the choices. One error, naming the first bad key, its value and what is allowed."""
    defaults = _flatten(load_yaml(_DEFAULTS))
    declared = {f"model.{k}": v for k, v in _flatten(model_defaults or {}).items()}
    for key, value in _flatten(cfg).items():
        if key in SCHEMA:
            check_value(key, value, *SCHEMA[key])
        elif key in declared or key in defaults:
            default = declared[key] if key in declared else defaults[key]
            check_value(key, value, _kind_of(default), nullable=default is None)
    for (section, key), valid in _CHOICES.items():
        if key not in cfg.get(section, {}):
            continue
        value = cfg[section][key]
        if value not in valid:
            raise ConfigError(f"{section}.{key}={value!r} is not valid; choose one of {', '.join(valid)}")
    if not _DEVICE.fullmatch(str(cfg["train"]["device"])):
        raise ConfigError(f"train.device={cfg['train']['device']!r} is not valid; give auto, cpu, cuda or cuda:N")


def _dataset_names() -> list[str]:
    from common.datasets import dataset_names

    return dataset_names()
