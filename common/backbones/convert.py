"""One-time converter for an ir50.pth / mobilefacenet_model_best.pth.tar that torch.load(weights_only=True) refuses.

    python -m common.backbones.convert SRC DST

Both files are plain torch.save checkpoints and normally load safely. A copy whose metadata holds
objects other than tensors and plain Python values (e.g. a numpy scalar next to 'state_dict')
can only be read by unpickling. This unpickles SRC once - you are trusting that file - keeps only
its state dict (the 'state_dict' entry if there is one, 'module.' prefixes stripped) and writes DST,
which training reads with weights_only=True. Give DST the name the model looks for.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from common.checkpoint import atomic_torch_save, converter_main, is_state_dict, plain_state


def convert(src: Path, dst: Path) -> int:
    """Write the tensors of SRC's state dict to DST; returns how many."""
    obj = torch.load(src, map_location="cpu", weights_only=False)
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not is_state_dict(obj):
        raise ValueError(f"{src}: expected a state dict (or a checkpoint with 'state_dict'), got {type(obj).__name__}")
    state = plain_state(obj)
    atomic_torch_save(state, dst)
    print(f"wrote {dst}: {len(state)} tensors")
    return len(state)


def main(argv: list[str] | None = None) -> None:
    converter_main(convert, prog="python -m common.backbones.convert", doc=__doc__, argv=argv,
                   src_help="an ir50.pth or mobilefacenet_model_best.pth.tar that weights_only loading refuses",
                   dst_help="where to write the safe copy, under the name the model looks for",
                   trusted="a copy of the published ir50.pth / mobilefacenet_model_best.pth.tar")


if __name__ == "__main__":
    main()
