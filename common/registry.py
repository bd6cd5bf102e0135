"""Model registry. Models register by name; the harness never imports this (it imports torch)."""
from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Callable, TypeVar

from common.adapter import Adapter
from common.config import MODELS_DIR, model_dirs
from common.errors import UnknownNameError

_REGISTRY: dict[str, type[Adapter]] = {}
_DISCOVERED = False
A = TypeVar("A", bound=type[Adapter])


# Model facts that are data in the `meta:` section of config.yaml (common/meta.py), not class attributes.
META_ATTRIBUTES = ("display_name", "input_spec", "pretrained_files", "pretrained_aliases")


def register(name: str) -> Callable[[A], A]:
    """Class decorator: register an Adapter subclass under `name`, which must be the name of the folder
    holding it (the name the harness plans with); duplicates are an error."""

    def wrap(cls: A) -> A:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(
                f"model {name!r} is registered twice: {_REGISTRY[name].__module__} and {cls.__module__}"
            )
        folder = Path(sys.modules[cls.__module__].__file__ or "").parent
        if folder.name != name:
            raise ValueError(f"{cls.__qualname__} is registered as {name!r} but lives in the folder "
                             f"{folder.name!r} ({folder}); the model name is its folder's name: "
                             f"write @register({folder.name!r}) or rename the folder")
        declared = [attr for attr in META_ATTRIBUTES if attr in vars(cls)]
        if declared:
            raise ValueError(f"{cls.__qualname__} declares {', '.join(declared)}; these are data: write them "
                             f"under `meta:` in {folder / 'config.yaml'} (keys: display_name, input, "
                             f"pretrained_files, pretrained_aliases) and remove them from the class")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def _import_model(name: str, folder: Path) -> None:
    if folder.parent == MODELS_DIR:
        importlib.import_module(f"models.{name}.adapter")
        return
    # A model folder outside the repository (FER_MODELS_PATH): import it under its own name.
    module_name = f"fer_external_models.{name}.adapter"
    if module_name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(module_name, folder / "adapter.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"model folder {folder} has no adapter.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)


def _discover() -> None:
    """Import <folder>/adapter.py for every model folder (common.config.model_dirs), so adding a
    model touches its folder only."""
    global _DISCOVERED
    if not _DISCOVERED:
        for name, folder in model_dirs().items():
            _import_model(name, folder)
        _DISCOVERED = True


def model_names() -> list[str]:
    _discover()
    return sorted(_REGISTRY)


def get_adapter(name: str) -> Adapter:
    """Instantiate the adapter registered as `name`; unknown names list the valid ones.
    Imports only that model's folder (a run should not pay for importing every other model)."""
    folder = model_dirs().get(name)
    if folder is not None and name not in _REGISTRY:
        _import_model(name, folder)
    if name not in _REGISTRY:
        _discover()
    if name not in _REGISTRY:
        raise UnknownNameError(f"unknown model {name!r}; valid models: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]()
