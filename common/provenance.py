"""Which code a result or an image came from (torch-free: the harness labels images with it)."""
from __future__ import annotations

import os
import subprocess

from common.config import ROOT


def git_commit() -> str:
    """HEAD of the repository, with `-dirty` when tracked files differ from it; FER_GIT_COMMIT when set
    (the model images carry no .git, so their build records the commit there); else "unknown"."""
    if os.environ.get("FER_GIT_COMMIT"):
        return os.environ["FER_GIT_COMMIT"]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"
