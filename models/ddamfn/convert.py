"""One-time converter for DDAMFN's published backbone, MFN_msceleb.pth.

    python -m models.ddamfn.convert SRC DST

The authors published the MS-Celeb MixedFeatureNet as a whole pickled nn.Module (torch.save(model)),
which can only be read by unpickling, and unpickling needs their classes (networks.MixedFeatureNet.*).
This converter unpickles SRC once - you are trusting that file - and writes DST, a plain state dict
{MixedFeatureNet key: tensor} that training reads with torch.load(weights_only=True).

It does not need the authors' code: a restricted unpickler stands in a generic nn.Module for each of
their classes (a module's parameters, buffers and children are all in its pickled __dict__), allows the
torch.nn layer classes and tensor-rebuild functions, and refuses any other global by name - including
everything that resolves to real code here, so a stand-in can never replace, say, os.system.
"""
from __future__ import annotations

import collections
import copyreg
import importlib.util
import pickle
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from common.checkpoint import atomic_torch_save, converter_main, is_state_dict, plain_state

# Globals a pickled torch module legitimately references, besides torch.nn layer classes.
_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("__builtin__", "set"): set,
    ("copyreg", "_reconstructor"): copyreg._reconstructor,
    ("copy_reg", "_reconstructor"): copyreg._reconstructor,
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
    ("torch._utils", "_rebuild_tensor"): torch._utils._rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): torch._utils._rebuild_parameter_with_state,
    ("torch._tensor", "_rebuild_from_type_v2"): torch._tensor._rebuild_from_type_v2,
    ("torch.nn.parameter", "Parameter"): nn.Parameter,
}


def _is_foreign_code(module: str) -> bool:
    """True for modules that do not exist here (the authors' networks.*): those get stand-ins. Anything
    that resolves to real code on this machine (stdlib, installed packages) is never stood in for."""
    top = module.split(".")[0]
    if top == "__main__":  # a model pickled from the authors' training script
        return True
    if top in sys.stdlib_module_names or top in sys.modules:
        return False
    try:
        return importlib.util.find_spec(top) is None  # locates only; executes nothing
    except (ImportError, ValueError):
        return False


def _stand_in(module: str, name: str, cache: dict[str, type]) -> type:
    """A generic nn.Module subclass named after the authors' class (for messages only)."""
    qual = f"{module}.{name}"
    if qual not in cache:
        cache[qual] = type(name, (nn.Module,), {"__module__": "models.ddamfn.convert.standin",
                                                "__doc__": f"stand-in for {qual}"})
    return cache[qual]


class _Unpickler(pickle.Unpickler):
    stand_ins: dict[str, type] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        if module.startswith("torch.nn.modules."):
            cls = super().find_class(module, name)
            if isinstance(cls, type) and issubclass(cls, nn.Module):
                return cls
        if _is_foreign_code(module):
            return _stand_in(module, name, self.stand_ins)
        raise pickle.UnpicklingError(
            f"refusing global {module}.{name}: not a torch.nn layer, tensor rebuild function or a class of "
            f"code absent from this machine (the authors'); this does not look like a pickled MixedFeatureNet "
            f"(if it is, run the converter outside a checkout of the authors' code)")


class _PickleModule:
    """What torch.load needs from `pickle_module`: Unpickler, and load for the legacy format's header."""

    Unpickler = _Unpickler
    __name__ = "models.ddamfn.convert"

    @staticmethod
    def load(f, **kwargs: Any) -> Any:
        return _Unpickler(f, **kwargs).load()


def convert(src: Path, dst: Path) -> dict[str, torch.Tensor]:
    """Unpickle SRC (trusted), write its state dict to DST, return it."""
    _Unpickler.stand_ins = {}
    obj = torch.load(src, map_location="cpu", weights_only=False, pickle_module=_PickleModule)
    if isinstance(obj, nn.Module):
        state = obj.state_dict()
    elif is_state_dict(obj):
        state = obj
    else:
        raise ValueError(f"{src}: expected a pickled nn.Module (or a state dict), got {type(obj).__name__}")
    state = plain_state(state)
    atomic_torch_save(state, dst)
    stood_in = ", ".join(sorted(_Unpickler.stand_ins)) or "none"
    print(f"converted {src} -> {dst}: {len(state)} tensors; classes read through stand-ins: {stood_in}")
    return state


def main(argv: list[str] | None = None) -> None:
    converter_main(convert, prog="python -m models.ddamfn.convert", doc=__doc__, argv=argv,
                   src_help="the authors' MFN_msceleb.pth (a pickled nn.Module)",
                   dst_help='where to write the plain state dict, e.g. models/pretrain/MFN_msceleb.pth',
                   trusted="the authors' published MFN_msceleb.pth")


if __name__ == "__main__":
    main()
