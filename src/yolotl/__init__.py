"""yolotl: transfer learning for YOLO object detection on timm backbones, with Lightning and Hydra.

Everything a notebook needs is importable from here, no Hydra required::

    import yolotl
    dm = yolotl.DetectionDataModule(root="data/bccd", format="voc", image_size=416,
                                    reading={"class_names": ["RBC", "WBC", "Platelets"]})
    dm.setup()
    detector = yolotl.create_detector("efficientnet_lite0", class_names=dm.class_names)
    module = yolotl.DetectionModule(detector, strategy=yolotl.Finetune(),
                                    train_class_counts=dm.class_counts("train"))
    trainer = lightning.Trainer(max_epochs=30, callbacks=[yolotl.EMA()])
    trainer.fit(module, datamodule=dm)
    yolotl.TorchDetector(detector).predict("image.jpg")
    detector = yolotl.load("outputs/<run>/checkpoints/best.ckpt")  # later, no training code
    detector.predict("image.jpg")

Names are imported on first use (PEP 562): ``import yolotl`` is cheap, and ``yolotl.load`` and
``predict()`` never import Lightning or Hydra.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from yolotl._version import __version__

# name -> the module that defines it
_HOMES = {
    "load": "yolotl.inference.loading",
    **dict.fromkeys(
        ["AugmentSettings", "CheckSettings", "DetectionDataModule", "HealthReport", "LoaderSettings", "ReadSettings",
         "Selection", "check_dataset", "make_synthetic_dataset", "read_split", "save_augmentation_grid"], "yolotl.data"),
    **dict.fromkeys(
        ["BackboneError", "CheckpointError", "ConfigError", "DatasetError", "PretrainedWeightsError",
         "TrainingDivergedError", "YolotlError"], "yolotl.errors"),
    **dict.fromkeys(["evaluate", "export", "predict_source", "predict_stream", "serve", "train"], "yolotl.api"),
    "DetectionMetrics": "yolotl.evaluation",
    **dict.fromkeys(["DetectorConfig", "LoadReport", "TimmBackbone", "YoloDetector", "create_detector"],
                    "yolotl.models"),
    **dict.fromkeys(["EMA", "AtomicCheckpointIO", "DetectionModule", "Distiller", "EarlyStop", "EndToEnd", "EvalSettings",
                     "FeatureExtract", "Finetune", "LossWeights", "Milestone", "OldClasses", "ReuseFreedMemory", "StallWarning",
                     "TransferStrategy", "WarmupCosine", "adamw"], "yolotl.training"),
    # onnx, onnxruntime, openvino, nncf: optional
    **dict.fromkeys(["OnnxDetector", "OpenVinoDetector", "TorchDetector", "export_onnx", "export_openvino",
                     "quantize_onnx", "quantize_openvino"], "yolotl.inference"),
}

if TYPE_CHECKING:
    from yolotl.api import evaluate, export, predict_source, predict_stream, serve, train
    from yolotl.inference.loading import load
    from yolotl.data import (
        AugmentSettings,
        CheckSettings,
        DetectionDataModule,
        HealthReport,
        LoaderSettings,
        ReadSettings,
        Selection,
        check_dataset,
        make_synthetic_dataset,
        read_split,
        save_augmentation_grid,
    )
    from yolotl.errors import (
        BackboneError,
        CheckpointError,
        ConfigError,
        DatasetError,
        PretrainedWeightsError,
        TrainingDivergedError,
        YolotlError,
    )
    from yolotl.evaluation import DetectionMetrics
    from yolotl.inference import (
        OnnxDetector,
        OpenVinoDetector,
        TorchDetector,
        export_onnx,
        export_openvino,
        quantize_onnx,
        quantize_openvino,
    )
    from yolotl.models import DetectorConfig, LoadReport, TimmBackbone, YoloDetector, create_detector
    from yolotl.training import (
        EMA,
        AtomicCheckpointIO,
        DetectionModule,
        Distiller,
        EarlyStop,
        EndToEnd,
        EvalSettings,
        FeatureExtract,
        Finetune,
        LossWeights,
        Milestone,
        OldClasses,
        ReuseFreedMemory,
        StallWarning,
        TransferStrategy,
        WarmupCosine,
        adamw,
    )

__all__ = sorted([*_HOMES, "__version__"])


def __getattr__(name: str) -> Any:
    """Import ``name`` from its home module on first use, then keep it here."""
    if name not in _HOMES:
        raise AttributeError(f"module 'yolotl' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
