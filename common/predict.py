"""Predict new photos with a finished run: `python -m common.predict RUN_DIR IMAGES OUT [--align]`.

Loads the run's spec and its best checkpoint (the one the run selected and tested), optionally aligns
each photo as `make align` aligns a dataset (MTCNN's 5 landmarks, the largest face, the same template
and margin; a photo with no face falls back to its centre square, as `--no-face center` does), applies
the model's eval transform and writes OUT/predictions.csv (file, face found, error, predicted class,
one probability per class) and OUT/contact_sheet.png (each face with its label).

Refuses a run that is not done and a checkpoint that is not the run's own (status.json records the
spec hash and the sha256 of best.pt). An image that cannot be read gets a row naming the error and the
others go on; a photo with no face gets a row marked face_found=false, never dropped.
"""
from __future__ import annotations

import argparse
import csv
import io
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from common.io import atomic_path, atomic_write_text, file_sha256, read_json
from common.spec import RunSpec
from common.status import RunStatus

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
SHEET_TILE = 128


class RunNotUsable(ValueError):
    """The run folder cannot be predicted with (not done, no checkpoint, checkpoint of another spec)."""


@dataclass
class Photo:
    file: str
    image: Image.Image | None = None
    face_found: bool | None = None  # None: not checked (no alignment asked for)
    error: str = ""
    probs: list[float] = field(default_factory=list)


def check_run(run_dir: Path) -> tuple[RunSpec, dict[str, Any], Path]:
    """(spec, status, checkpoint) of a finished run whose best.pt is its own, or RunNotUsable saying why."""
    run_dir = Path(run_dir)
    if not (run_dir / "spec.json").is_file():
        raise RunNotUsable(f"{run_dir} is not a run folder (no spec.json); give RUN=results/runs/<model>/"
                           "<dataset>/<protocol>/iter-<k>")
    spec = RunSpec.load(run_dir / "spec.json")
    status = read_json(run_dir / "status.json") if (run_dir / "status.json").is_file() else {}
    if status.get("status") != RunStatus.DONE:
        raise RunNotUsable(f"run {run_dir} is not done (status: {status.get('status', 'no status.json')}); "
                           "finish it first (rerun the same `make run` command)")
    if status.get("spec_hash") != spec.hash:
        raise RunNotUsable(f"{run_dir / 'status.json'} belongs to spec {status.get('spec_hash')}, but spec.json "
                           f"is {spec.hash}: the folder mixes two runs; rerun it")
    ckpt = run_dir / "best.pt"
    if not ckpt.is_file():
        raise RunNotUsable(f"{ckpt} does not exist (was the run made with train.keep_checkpoint=false?); rerun "
                           "it with SET=\"train.keep_checkpoint=true\"")
    recorded = status.get("checkpoint_sha256")
    if recorded is None:
        print(f"WARNING: {run_dir / 'status.json'} records no checkpoint hash (a run from before it was "
              f"recorded); {ckpt} is taken as the run's own", file=sys.stderr, flush=True)
    elif file_sha256(ckpt) != recorded:
        raise RunNotUsable(f"{ckpt} is not the checkpoint of spec {spec.hash} (sha256 differs from the one "
                           f"status.json recorded): it was replaced or copied from another run; rerun the run")
    return spec, status, ckpt


def list_images(folder: Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"images folder {folder} does not exist")
    found = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return found


def read_photo(path: Path) -> Photo:
    try:
        with Image.open(path) as img:
            return Photo(path.name, img.convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        return Photo(path.name, error=f"{type(e).__name__}: {e}")


def align_photos(photos: list[Photo], size: int, margin: float, device: str) -> None:
    """Replace each readable photo by its aligned face (largest face), as `make align` does."""
    from preprocess import geometry
    from preprocess.align import _fit
    from preprocess.choose import choose_face
    from preprocess.detector import detect, load_mtcnn

    net = load_mtcnn(device)
    target = geometry.template(size, margin)
    for photo in photos:
        if photo.image is None:
            continue
        faces = detect(net, [np.asarray(photo.image)])[0]
        chosen, _ = choose_face(faces, None, "largest")
        matrix = _fit(chosen.points, target) if chosen is not None else None
        photo.face_found = matrix is not None
        if matrix is None:  # the centre square, as `make align --no-face center` writes it
            w, h = photo.image.size
            side = min(w, h)
            matrix = geometry.box_crop_matrix(((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2), size)
        photo.image = geometry.warp(photo.image, np.asarray(matrix), size)


def predict_photos(run_dir: Path, images: Path, out: Path, *, align: bool = False, align_size: int = 112,
                   margin: float = 0.25, device: str = "cpu", batch_size: int = 32) -> list[Photo]:
    from common import accel, registry
    from common.train import resolve_device
    from common.transforms import eval_transform

    spec, status, ckpt = check_run(run_dir)
    class_names = list(status["class_names"])
    dev = resolve_device(device)
    adapter = registry.get_adapter(spec.model)
    task = adapter.build(len(class_names), spec.config, [1] * len(class_names))
    task.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=True))
    task.to(dev).eval()
    photos = [read_photo(p) for p in list_images(images)]
    for p in photos:
        if p.error:
            print(f"WARNING: cannot read {Path(images) / p.file}: {p.error}; going on", file=sys.stderr, flush=True)
    if align:
        align_photos(photos, align_size, margin, str(dev))
    transform = eval_transform(adapter.input_spec, spec.config)
    ok = [p for p in photos if p.image is not None]
    # The precision the run was validated and tested in (its AMP dtype on CUDA), so the same photo
    # scores as in the run's predictions.csv.
    amp_dtype = accel.autocast_dtype(spec.config["train"], dev)
    with torch.no_grad(), torch.autocast(dev.type, enabled=amp_dtype is not None, dtype=amp_dtype):
        for i in range(0, len(ok), batch_size):
            chunk = ok[i:i + batch_size]
            x = torch.stack([transform(p.image) for p in chunk]).to(dev)
            probs = torch.softmax(task.predict(x).float(), dim=1).cpu().numpy()
            for p, row in zip(chunk, probs):
                p.probs = [float(v) for v in row]
    out = Path(out)
    write_csv(photos, class_names, out / "predictions.csv")
    contact_sheet(photos, class_names, out / "contact_sheet.png")
    print(f"{spec.model} ({run_dir}): {len(ok)} of {len(photos)} photos predicted"
          + (f", {sum(p.face_found is False for p in photos)} without a face" if align else "")
          + f" -> {out / 'predictions.csv'}", flush=True)
    return photos


def write_csv(photos: list[Photo], class_names: list[str], path: Path) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["file", "face_found", "error", "pred", *(f"p_{c}" for c in class_names)])
    for p in photos:
        found = "" if p.face_found is None else str(p.face_found).lower()
        pred = class_names[int(np.argmax(p.probs))] if p.probs else ""
        w.writerow([p.file, found, p.error, pred, *(f"{v:.6f}" for v in p.probs)])
    atomic_write_text(path, buf.getvalue())


def contact_sheet(photos: list[Photo], class_names: list[str], path: Path, columns: int = 6) -> None:
    """The faces the model saw, in a grid, each under its file name, prediction and probability."""
    from PIL import ImageDraw

    shown = [p for p in photos if p.image is not None]
    columns = max(1, min(columns, len(shown)))
    rows = max(1, -(-len(shown) // columns))
    label_h = 30
    sheet = Image.new("RGB", (columns * SHEET_TILE, rows * (SHEET_TILE + label_h)), "white")
    draw = ImageDraw.Draw(sheet)
    for k, p in enumerate(shown):
        x, y = (k % columns) * SHEET_TILE, (k // columns) * (SHEET_TILE + label_h)
        sheet.paste(p.image.resize((SHEET_TILE, SHEET_TILE)), (x, y))
        best = int(np.argmax(p.probs))
        text = f"{p.file[:20]}\n{class_names[best]} {p.probs[best]:.2f}" + (" (no face)" if p.face_found is False else "")
        draw.multiline_text((x + 2, y + SHEET_TILE + 1), text, fill="black")
    with atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m common.predict", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", type=Path, help="a finished run: results/runs/<model>/<dataset>/<protocol>/iter-<k>")
    ap.add_argument("images", type=Path, help="folder of photos")
    ap.add_argument("out", type=Path, help="folder for predictions.csv and contact_sheet.png")
    ap.add_argument("--align", action="store_true", help="align each photo with MTCNN first (largest face)")
    ap.add_argument("--align-size", type=int, default=112, help="aligned crop size, as `make align` (112 or 224)")
    ap.add_argument("--margin", type=float, default=0.25, help="alignment margin, as `make align` (default 0.25)")
    ap.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto (default: cpu)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = ap.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(max(1, args.threads))
    try:
        predict_photos(args.run_dir, args.images, args.out, align=args.align, align_size=args.align_size,
                       margin=args.margin, device=args.device)
    except (RunNotUsable, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
