"""yolotl: transfer learning for YOLO object detection on timm backbones, with Lightning and Hydra.

Everything a notebook needs is importable from here, no Hydra required::

    import yolotl
    dm = yolotl.DetectionDataModule(root="data/bccd", format="voc", image_size=416)
    dm.setup("fit")
    detector = yolotl.create_detector("efficientnet_lite0", class_names=dm.class_names)
    module = yolotl.DetectionModule(detector)
    trainer = lightning.Trainer(max_epochs=30, callbacks=[yolotl.Finetune(), yolotl.EMA()])
    trainer.fit(module, datamodule=dm)
    detector.predict("image.jpg")
    detector = yolotl.load("outputs/<run>/checkpoints/best.ckpt")  # later, no training code
"""

from yolotl.checkpoint import load
from yolotl.data import (
    AugmentSettings,
    DetectionDataModule,
    HealthReport,
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
    YolotlError,
)
from yolotl.evaluate import evaluate
from yolotl.evaluation import DetectionMetrics
from yolotl.models import (
    DetectorConfig,
    LoadReport,
    TimmBackbone,
    YoloDetector,
    create_detector,
)
from yolotl.predict import predict_source
from yolotl.training import (
    EMA,
    DetectionModule,
    Distiller,
    EndToEnd,
    FeatureExtract,
    Finetune,
    Milestone,
    TransferStrategy,
)

__version__ = "0.1.0"


def __getattr__(name: str):  # noqa: ANN202 - lazy: onnx/onnxruntime are optional
    if name in ("OnnxDetector", "export_onnx"):
        import yolotl.inference as inference

        return getattr(inference, name)
    raise AttributeError(f"module 'yolotl' has no attribute {name!r}")

__all__ = [
    "EMA",
    "AugmentSettings",
    "BackboneError",
    "CheckpointError",
    "ConfigError",
    "DatasetError",
    "DetectionDataModule",
    "DetectionMetrics",
    "DetectionModule",
    "Distiller",
    "HealthReport",
    "DetectorConfig",
    "EndToEnd",
    "FeatureExtract",
    "Finetune",
    "LoadReport",
    "Milestone",
    "OnnxDetector",
    "PretrainedWeightsError",
    "TimmBackbone",
    "TransferStrategy",
    "YoloDetector",
    "YolotlError",
    "check_dataset",
    "create_detector",
    "evaluate",
    "export_onnx",
    "load",
    "make_synthetic_dataset",
    "predict_source",
    "read_split",
    "save_augmentation_grid",
    "__version__",
]
