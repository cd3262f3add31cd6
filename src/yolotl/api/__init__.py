"""The library's workflows as plain functions: ``train(cfg)``, ``evaluate``, ``predict_source``, ``export``, ``serve``
(and ``config_dir()``, the packaged Hydra configs ``train(cfg)`` composes from).

Each is what one ``yolotl-*`` command runs, callable from a notebook or a test. Imported on first
use, so ``yolotl.api.evaluate`` does not load Lightning.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from yolotl.api.configs import config_dir
    from yolotl.api.eval_run import evaluate
    from yolotl.api.export_run import calibration_set, export, output_path, parity_summary
    from yolotl.api.predict_run import find_images, predict_source
    from yolotl.api.stream_predict import FrameResult, StreamStats, predict_stream
    from yolotl.api.recipe import apply_recipe, choose_recipe, profile_training_split
    from yolotl.api.resume import resume_point, resumed_config
    from yolotl.api.run_folder import run_dir_of
    from yolotl.api.serve_run import serve
    from yolotl.api.train_run import build, train

_HOMES = {
    "apply_recipe": "yolotl.api.recipe",
    "choose_recipe": "yolotl.api.recipe",
    "profile_training_split": "yolotl.api.recipe",
    "build": "yolotl.api.train_run",
    "config_dir": "yolotl.api.configs",
    "train": "yolotl.api.train_run",
    "evaluate": "yolotl.api.eval_run",
    "export": "yolotl.api.export_run",
    "calibration_set": "yolotl.api.export_run",
    "output_path": "yolotl.api.export_run",
    "parity_summary": "yolotl.api.export_run",
    "find_images": "yolotl.api.predict_run",
    "predict_source": "yolotl.api.predict_run",
    "predict_stream": "yolotl.api.stream_predict",
    "FrameResult": "yolotl.api.stream_predict",
    "StreamStats": "yolotl.api.stream_predict",
    "run_dir_of": "yolotl.api.run_folder",
    "serve": "yolotl.api.serve_run",
    "resume_point": "yolotl.api.resume",
    "resumed_config": "yolotl.api.resume",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
