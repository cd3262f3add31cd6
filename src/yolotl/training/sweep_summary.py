"""Hydra callback: after a multirun, write one comparison table (CSV + Markdown) of its jobs."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from yolotl.training.run import summarise_runs

log = logging.getLogger("yolotl.sweep")


class SweepSummary(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        written = summarise_runs(Path(config.hydra.sweep.dir))
        if written is None:
            log.warning("no metrics.json found under %s: no summary written", config.hydra.sweep.dir)
            return
        csv_path, md_path = written
        print(md_path.read_text())
        print(f"sweep summary: {csv_path} and {md_path}")
