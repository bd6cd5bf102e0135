"""One-time converter for an LNSU-Net start_0.pt that torch.load(weights_only=True) refuses.

    python -m models.lnsunet.convert SRC DST

The authors' start_0.pt is a torch.save'd dict whose 'state_dict_backbone' holds the encoder. If
the copy you have also pickles other objects (training arguments, scheduler objects), the safe
loader refuses the whole file. This converter unpickles SRC once - you are trusting that file -
and writes DST = {'state_dict_backbone': {key: tensor}}, which training reads safely. Files the
safe loader already accepts need no conversion.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from common.checkpoint import atomic_torch_save, converter_main, is_state_dict, plain_state

KEY = "state_dict_backbone"


def convert(src: Path, dst: Path) -> dict[str, torch.Tensor]:
    """Unpickle SRC (trusted), write its encoder state dict to DST, return it."""
    obj = torch.load(src, map_location="cpu", weights_only=False)
    state = obj.get(KEY, obj) if isinstance(obj, Mapping) else obj
    if not is_state_dict(state):
        found = sorted(obj)[:20] if isinstance(obj, Mapping) else type(obj).__name__
        raise ValueError(f"{src}: expected a dict with {KEY!r} holding tensors (or a plain state dict); found {found}")
    state = plain_state(state)
    atomic_torch_save({KEY: state}, dst)
    print(f"converted {src} -> {dst}: {len(state)} tensors under {KEY!r}")
    return state


def main(argv: list[str] | None = None) -> None:
    converter_main(convert, prog="python -m models.lnsunet.convert", doc=__doc__, argv=argv,
                   src_help="the authors' start_0.pt",
                   dst_help='where to write the safe copy, e.g. models/pretrain/start_0.pt',
                   trusted="the authors' published start_0.pt")


if __name__ == "__main__":
    main()
