"""Where a ``yolotl-train`` run keeps its files, seen from one of its checkpoints."""

from __future__ import annotations

from pathlib import Path


def run_dir_of(checkpoint: str | Path | None) -> Path | None:
    """The ``yolotl-train`` run folder of ``<run>/checkpoints/<name>.ckpt``, if the file sits in one."""
    if checkpoint is None:
        return None
    run = Path(checkpoint).resolve().parent.parent
    return run if (run / "config.yaml").is_file() else None
