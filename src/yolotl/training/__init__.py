"""Training: the Lightning module, parameter groups and strategy callbacks."""

from yolotl.training.callbacks import EMA, ReuseFreedMemory, Throughput
from yolotl.training.checkpoint_io import AtomicCheckpointIO
from yolotl.training.distillation import Distiller
from yolotl.training.module import DetectionModule
from yolotl.training.monitor import EarlyStop, StallWarning
from yolotl.training.optimization import WarmupCosine, adamw
from yolotl.training.param_groups import build_param_groups, count_parameters
from yolotl.training.settings import EvalSettings, LossWeights, OldClasses
from yolotl.training.strategies import (
    EndToEnd,
    FeatureExtract,
    Finetune,
    Milestone,
    TransferStrategy,
)

__all__ = [
    "EMA",
    "AtomicCheckpointIO",
    "DetectionModule",
    "Distiller",
    "EarlyStop",
    "EndToEnd",
    "EvalSettings",
    "FeatureExtract",
    "Finetune",
    "LossWeights",
    "Milestone",
    "OldClasses",
    "ReuseFreedMemory",
    "StallWarning",
    "Throughput",
    "TransferStrategy",
    "WarmupCosine",
    "adamw",
    "build_param_groups",
    "count_parameters",
]
