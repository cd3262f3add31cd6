"""Checkpoint files written so that a kill or a full disk during a save never costs the previous one.

Lightning's own atomic save writes the new file in the system temp folder and then moves it into
place; when that folder is on another disk than the run (a node-local ``/tmp``, a small tmpfs) the
move is a copy into the final path, so a kill during it leaves a truncated ``last.ckpt``, and a kill
at any point leaves the temp file behind. Here the bytes go to a hidden temp file *beside* the
checkpoint, are flushed to the disk, and replace the old file with one ``os.replace`` (atomic on one
file system). Remote paths (``s3://`` and the like) keep Lightning's way.
"""

from __future__ import annotations

import errno
import io
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from fsspec.utils import get_protocol
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from yolotl.errors import CheckpointError

__all__ = ["AtomicCheckpointIO", "write_atomically"]

TEMP_SUFFIX = ".tmp"


def _temp_path(path: Path) -> Path:
    """Hidden, same folder (same disk), not ending in .ckpt so no checkpoint listing picks it up."""
    return path.with_name(f".{path.name}.{os.getpid()}{TEMP_SUFFIX}")


def write_atomically(data: bytes, path: str | os.PathLike) -> None:
    """Write ``data`` to ``path``: temp file beside it, flush + fsync, rename over the old file.

    A full disk raises :class:`CheckpointError` naming the file and the free space; the old file and
    no temp file are left. Temp files of this path left by a process killed mid-save are removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = _temp_path(path)
    try:
        with open(temp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except OSError as err:
        temp.unlink(missing_ok=True)
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            free = shutil.disk_usage(path.parent).free
            raise CheckpointError(
                f"no space left to write {path} ({len(data) / 2**20:.1f} MiB needed, {free / 2**20:.1f} MiB free): "
                "free some disk space or put the run on another disk (paths.output_dir=... or "
                "hydra.run.dir=...); the previous checkpoint is intact, so resume=<run folder> continues"
            ) from err
        raise
    _sync_folder(path.parent)
    for stale in path.parent.glob(f".{path.name}.*{TEMP_SUFFIX}"):  # left by a process killed mid-save
        stale.unlink(missing_ok=True)


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint IO whose local saves are :func:`write_atomically`; loads are Lightning's."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None or get_protocol(str(path)) != "file":  # s3://, gs://, memory://, ...
            super().save_checkpoint(checkpoint, path, storage_options=storage_options)
            return
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        write_atomically(buffer.getbuffer(), path)
