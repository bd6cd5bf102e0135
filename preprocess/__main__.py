"""Command line: python -m preprocess align --dataset {expw,rafdb,sfew,ckplus,folder} --src SRC --dst DST."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common.errors import FERUserError
from preprocess.geometry import SIZES
from preprocess.layouts import DATASETS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m preprocess", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    a = sub.add_parser("align", help="detect 5 landmarks with MTCNN and warp every face to the template")
    a.add_argument("--dataset", required=True, choices=DATASETS, help="layout of SRC and DST")
    a.add_argument("--src", required=True, type=Path, help="raw dataset root (or any image folder)")
    a.add_argument("--dst", required=True, type=Path, help="output root, in the loader's layout")
    a.add_argument("--size", type=int, default=112, choices=SIZES, help="output side in pixels")
    a.add_argument(
        "--margin", type=float, default=0.25,
        help="context around the template per side, as a fraction of the 112 crop; 0 = ArcFace crop, "
        "0.25 (default) = the reference suite's ExpW alignment",
    )
    a.add_argument(
        "--no-face", choices=("center", "skip"), default="center",
        help="when no face is found: write a centre crop (of the annotated box for ExpW) or skip the "
        "image and drop it from the label file; either way it is in the manifest",
    )
    a.add_argument(
        "--select", choices=("largest", "confident"), default="largest",
        help="which face when several are found and no box is annotated",
    )
    a.add_argument("--workers", type=int, default=2, help="processes decoding and warping (0: in-process)")
    a.add_argument("--batch-size", type=int, default=32, help="faces per MTCNN call")
    a.add_argument("--device", default=None, help="torch device for MTCNN (default: cuda if available)")
    a.add_argument(
        "--threads", type=int, default=None,
        help="torch CPU threads for detection in the main process (default: torch's choice)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from preprocess.align import align_dataset  # after parsing: --help must not need torch

    try:
        summary = align_dataset(
            args.dataset, args.src, args.dst,
            size=args.size, margin=args.margin, no_face=args.no_face, select=args.select,
            workers=args.workers, batch_size=args.batch_size, device=args.device, threads=args.threads,
        )
    except FERUserError as e:  # a bad option or source layout is one message; a bug keeps its traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
    counts = ", ".join(f"{k} {v}" for k, v in summary.counts.items())
    print(
        f"[align] done: {summary.total} faces ({counts}) in {summary.seconds:.1f}s, "
        f"{summary.images_per_s:.1f} img/s; manifest {summary.manifest}",
        file=sys.stderr,
    )
    if summary.counts.get("error"):
        failed = summary.counts["error"]
        print(f"[align] {failed} faces failed; see status=error in the manifest", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
