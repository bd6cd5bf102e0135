"""Checkpoint and published-weight I/O, once for every model.

Everything untrusted is read with torch.load(weights_only=True). Legacy pickles (whole pickled
modules, pickles of numpy arrays) go through an explicit one-time converter that says it
trusts the file (`converter_main`, used by each model's convert.py); training never unpickles.
"""
from __future__ import annotations

import argparse
import sys
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import torch
from torch import nn

from common.adapter import LoadReport
from common.io import atomic_path, file_sha256


def atomic_torch_save(obj: Any, path: Path) -> None:
    """torch.save through a temp file and a rename, so a reader never sees half a checkpoint."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _unwrapped(key: str) -> str:
    """A state-dict key without the `module.` prefix that DataParallel checkpoints carry."""
    return key.removeprefix("module.")


def plain_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached contiguous copies, without DataParallel's `module.` prefix: what a converter writes."""
    return {_unwrapped(k): v.detach().clone().contiguous() for k, v in state.items()}


def converter_main(convert: Callable[[Path, Path], Any], *, prog: str, doc: str | None, src_help: str,
                   dst_help: str, trusted: str, argv: list[str] | None = None) -> None:
    """Command line of a one-time legacy-pickle converter: `prog SRC DST`.

    Says before unpickling that it trusts SRC (unpickling can run code), refuses to overwrite
    SRC, and leaves the conversion itself to `convert(src, dst)`."""
    ap = argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", type=Path, help=src_help)
    ap.add_argument("dst", type=Path, help=dst_help)
    args = ap.parse_args(argv)
    if not args.src.is_file():
        sys.exit(f"no such file: {args.src}")
    if args.dst.exists() and args.src.resolve() == args.dst.resolve():
        sys.exit("SRC and DST are the same file; write the converted copy elsewhere")
    print(f"unpickling {args.src}: a legacy pickle; this trusts the file and runs any code it holds "
          f"(only convert {trusted})", flush=True)
    convert(args.src, args.dst)


def load_state_file(path: Path, key: str | None = None) -> dict[str, torch.Tensor]:
    """Load a state dict saved with torch.save, safely. `key` picks a sub-dict (e.g. 'state_dict').

    Falls back to the whole object when `key` is absent and the file is already a flat state dict.
    A DataParallel 'module.' prefix is stripped.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # the message of an unsafe pickle names the class it refused
        raise ValueError(
            f"{path} cannot be loaded safely (weights_only=True): {e}\n"
            "If it is a legacy pickle from the authors, convert it once with the model's converter "
            "(see the model README), then point the config at the converted file."
        ) from e
    if key is not None and isinstance(obj, Mapping) and key in obj:
        obj = obj[key]
    elif key is not None and not is_state_dict(obj):
        found = sorted(obj)[:20] if isinstance(obj, Mapping) else type(obj).__name__
        raise KeyError(f"{path}: expected key {key!r} holding a state dict; found {found}")
    if not is_state_dict(obj):
        raise ValueError(f"{path}: not a state dict of tensors (got {type(obj).__name__})")
    return {_unwrapped(k): v for k, v in obj.items()}


def is_state_dict(obj: Any) -> bool:
    """A non-empty mapping of names to tensors."""
    return isinstance(obj, Mapping) and bool(obj) and all(torch.is_tensor(v) for v in obj.values())


def _matches(key: str, patterns: Iterable[str]) -> bool:
    return any(fnmatchcase(key, p) for p in patterns)


def load_into(module: nn.Module, state: Mapping[str, torch.Tensor], *, files: list[Path],
              rename: Callable[[str], str | None] | None = None, allow_missing: Iterable[str] = (),
              allow_unexpected: Iterable[str] = (), what: str = "backbone", layout: str = "",
              fix: str = "") -> LoadReport:
    """Load `state` into `module` by name and say what did not fit.

    `rename` maps a file key to a module key (None: the file key is not used). `allow_missing`
    (module keys) and `allow_unexpected` (file keys) are fnmatch patterns of what may stay
    unmatched; anything else unmatched raises ValueError naming the file, the expected `layout`,
    the first offending keys and `fix`. A tensor whose shape differs is never loaded: it is
    reported in `shape_mismatch` (and its module key in `missing`) and is accepted only where both
    its file key may be unused and its module key may stay as initialised. Nothing is copied into
    `module` unless the whole load is accepted. Prints 'loaded X of Y <what> tensors'."""
    allow_missing, allow_unexpected = tuple(allow_missing), tuple(allow_unexpected)
    target = module.state_dict()
    renamed: dict[str, torch.Tensor] = {}
    unexpected: list[str] = []
    mismatch: list[dict[str, Any]] = []
    for k, v in state.items():
        new = rename(k) if rename else k
        if new is None or new not in target:
            unexpected.append(k)
        elif tuple(target[new].shape) != tuple(v.shape):
            mismatch.append({"key": k, "module_key": new, "expected": list(target[new].shape), "file": list(v.shape)})
        else:
            renamed[new] = v
    missing = sorted(set(target) - set(renamed))
    report = LoadReport(files=[str(f) for f in files], sha256=[file_sha256(Path(f)) for f in files],
                        loaded=len(renamed), expected=len(target), missing=missing, unexpected=unexpected,
                        shape_mismatch=mismatch)
    bad_missing = [k for k in missing if not _matches(k, allow_missing)]
    bad_unexpected = [k for k in unexpected if not _matches(k, allow_unexpected)]
    bad_shape = [f"{m['key']} (file {tuple(m['file'])}, {what} {tuple(m['expected'])})" for m in mismatch
                 if not (_matches(m["key"], allow_unexpected) and _matches(m["module_key"], allow_missing))]
    if bad_missing or bad_unexpected or bad_shape:
        raise ValueError(
            f"{', '.join(map(str, files))} does not fit the {what}: loaded {report.loaded} of {report.expected} "
            f"tensors; {len(bad_missing)} missing {bad_missing[:10]}, {len(bad_unexpected)} unexpected "
            f"{bad_unexpected[:10]}, {len(bad_shape)} of another shape {bad_shape[:10]}"
            + (f". Expected {layout}" if layout else "") + (f". {fix}" if fix else "")
        )
    module.load_state_dict(renamed, strict=False)
    print(f"loaded {report.loaded} of {report.expected} {what} tensors from {', '.join(Path(f).name for f in files)}"
          + (f"; missing {len(missing)}: {missing[:5]}" if missing else "")
          + (f"; unused {len(unexpected)}: {unexpected[:5]}" if unexpected else "")
          + (f"; other shape {len(mismatch)}: {[m['key'] for m in mismatch[:5]]}" if mismatch else ""), flush=True)
    return report


# Mid-run resume: `last.pt` beside `best.pt`, rewritten (atomically) at the end of every epoch.
RESUME_NAME = "last.pt"


def rng_state(generator: torch.Generator | None) -> dict[str, Any]:
    """Every RNG a run draws from, as tensors and plain types, so weights_only=True reads it back:
    python's `random`, numpy's global state, torch (CPU and every CUDA device) and the DataLoader's
    shuffling generator."""
    import random

    import numpy as np

    version, words, gauss = random.getstate()
    npstate = np.random.get_state(legacy=False)
    return {
        "python": {"version": version, "words": torch.tensor(words, dtype=torch.int64), "gauss": gauss},
        "numpy": {"bit_generator": npstate["bit_generator"],
                  "key": torch.from_numpy(npstate["state"]["key"].astype("int64")),
                  "pos": int(npstate["state"]["pos"]), "has_gauss": int(npstate["has_gauss"]),
                  "gauss": float(npstate["gauss"])},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "loader": generator.get_state() if generator is not None else None,
    }


def set_rng_state(state: Mapping[str, Any], generator: torch.Generator | None) -> None:
    """Restore what rng_state() captured (CUDA states only when the devices are there: a CPU
    resume of a GPU run continues the CPU streams)."""
    import random

    import numpy as np

    py = state["python"]
    random.setstate((py["version"], tuple(int(w) for w in py["words"].tolist()), py["gauss"]))
    npstate = state["numpy"]
    np.random.set_state({"bit_generator": npstate["bit_generator"],
                         "state": {"key": npstate["key"].numpy().astype(np.uint32), "pos": npstate["pos"]},
                         "has_gauss": npstate["has_gauss"], "gauss": npstate["gauss"]})
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    if generator is not None and state["loader"] is not None:
        generator.set_state(state["loader"])


def save_resume_state(run_dir: Path, state: dict[str, Any]) -> None:
    """Write `last.pt` (atomic: a run killed while writing keeps the previous epoch's file)."""
    atomic_torch_save(state, Path(run_dir) / RESUME_NAME)


def load_resume_state(run_dir: Path, spec_hash: str) -> tuple[dict[str, Any] | None, str]:
    """(state, why) of `last.pt`: the state if the file is there, readable and written for `spec_hash`;
    otherwise None and the reason in words ("" when there is simply no file).

    Always read onto the CPU, whatever device the run trains on: the RNG states must be CPU tensors
    for set_rng_state, and load_state_dict moves weights and optimiser state to their parameters'
    device itself."""
    path = Path(run_dir) / RESUME_NAME
    if not path.is_file():
        return None, ""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a damaged file is a fresh start, said out loud, never a crash
        return None, f"{path} is unreadable ({type(e).__name__}: {e}); starting from epoch 1"
    if not isinstance(state, Mapping) or state.get("spec_hash") != spec_hash:
        found = state.get("spec_hash") if isinstance(state, Mapping) else type(state).__name__
        return None, f"{path} belongs to another spec ({found}, this run is {spec_hash}); starting from epoch 1"
    return dict(state), ""


def remove_resume_state(run_dir: Path) -> None:
    """A finished run keeps best.pt (if asked) but not last.pt."""
    (Path(run_dir) / RESUME_NAME).unlink(missing_ok=True)
