"""One-time converter for GSDNet's backbone weights, vgg_msceleb_resnet50_ft_weight.pkl.

    python -m models.gsdnet.convert SRC DST

The file (the VGGFace2 ResNet-50 converted from Caffe, fine-tuned on MS-Celeb) is a Python-2 pickle of
{parameter name: numpy array}, read with encoding latin1. Reading it means unpickling: this converter
does it once - you are trusting the file - and writes DST, a plain torch state dict with the same names
that training reads with torch.load(weights_only=True).

As a guard, the unpickler only resolves the globals such a file needs (numpy array and dtype
reconstruction, OrderedDict) and refuses any other by name.
"""
from __future__ import annotations

import codecs
import collections
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common.checkpoint import atomic_torch_save, converter_main

# numpy moved numpy.core to numpy._core in 2.0; old pickles name the former.
_NUMPY_GLOBALS = {("multiarray", "_reconstruct"), ("multiarray", "scalar"), ("numeric", "_frombuffer")}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("_codecs", "encode"):  # how a Python-3 protocol-2 pickle stores bytes
            return codecs.encode
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        if module.startswith(("numpy.core.", "numpy._core.")) and (module.rsplit(".", 1)[1], name) in _NUMPY_GLOBALS:
            return super().find_class(module.replace("numpy.core.", "numpy._core.", 1), name)
        if module.startswith("numpy.dtypes") and name.endswith("DType"):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refusing global {module}.{name}: a weights pickle needs only numpy arrays; "
            f"this is not a vgg_msceleb_resnet50_ft_weight.pkl")


def read_pickle(src: Path) -> dict[str, np.ndarray]:
    with open(src, "rb") as f:
        obj = _Unpickler(f, encoding="latin1").load()
    if not isinstance(obj, dict) or not obj:
        raise ValueError(f"{src}: expected a dict of name -> numpy array, got {type(obj).__name__}")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, np.ndarray)]
    if bad:
        raise ValueError(f"{src}: entries that are not name -> numpy array: {bad[:10]}")
    return obj


def convert(src: Path, dst: Path) -> dict[str, torch.Tensor]:
    """Unpickle SRC (trusted), write {name: tensor} to DST, return it."""
    arrays = read_pickle(src)
    # np.array copies: the unpickled arrays may be read-only, which torch.from_numpy warns about.
    state = {k: torch.from_numpy(np.array(v, copy=True)) for k, v in arrays.items()}
    atomic_torch_save(state, dst)
    print(f"converted {src} -> {dst}: {len(state)} tensors, {sum(t.numel() for t in state.values()):,} values")
    return state


def main(argv: list[str] | None = None) -> None:
    converter_main(convert, prog="python -m models.gsdnet.convert", doc=__doc__, argv=argv,
                   src_help='vgg_msceleb_resnet50_ft_weight.pkl (pickle of name -> numpy array)',
                   dst_help='where to write the torch state dict, e.g. models/pretrain/vgg_msceleb_resnet50_ft_weight.pkl',
                   trusted='the published vgg_msceleb_resnet50_ft_weight.pkl')


if __name__ == "__main__":
    main()
