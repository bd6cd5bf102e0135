"""One-time converter for an ir50.pth / mobilefacenet_model_best.pth.tar that torch.load(weights_only=True) refuses.

    python -m common.backbones.convert SRC DST

Both files are plain torch.save checkpoints and normally load safely. A copy whose metadata holds
objects other than tensors and plain Python values (e.g. a numpy scalar next to 'state_dict')
can only be read by unpickling. This unpickles SRC once - you are trusting that file - keeps only
its state dict (the 'state_dict' entry if there is one, 'module.' prefixes stripped) and writes DST,
which training reads with weights_only=True. Give DST the name the model looks for.
"""
from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path

import torch

from common.checkpoint import atomic_torch_save


def convert(src: Path, dst: Path) -> int:
    """Write the tensors of SRC's state dict to DST; returns how many."""
    print(f"unpickling {src} (weights_only=False): only do this with a file you trust", flush=True)
    obj = torch.load(src, map_location="cpu", weights_only=False)
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not obj or not all(torch.is_tensor(v) for v in obj.values()):
        raise ValueError(f"{src}: expected a state dict (or a checkpoint with 'state_dict'), got {type(obj).__name__}")
    state = {(k[len("module."):] if k.startswith("module.") else k): v.clone() for k, v in obj.items()}
    atomic_torch_save(state, dst)
    return len(state)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m common.backbones.convert", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", type=Path)
    ap.add_argument("dst", type=Path)
    args = ap.parse_args(argv)
    n = convert(args.src, args.dst)
    print(f"wrote {args.dst}: {n} tensors")


if __name__ == "__main__":
    main()
