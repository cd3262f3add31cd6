"""Detector architecture: timm backbone, PAN neck, decoupled (or semantic) head, weight loading."""

from yolotl.models.backbone import TimmBackbone
from yolotl.models.detector import DetectorConfig, YoloDetector
from yolotl.models.factory import create_detector
from yolotl.models.head import DecoupledHead, HeadOutput
from yolotl.models.neck import PANNeck
from yolotl.models.semantic_head import SemanticHead, SemanticOutput
from yolotl.models.weights import OFFLINE_PACKAGES, LoadReport, load_pretrained

__all__ = [
    "OFFLINE_PACKAGES",
    "DecoupledHead",
    "DetectorConfig",
    "HeadOutput",
    "LoadReport",
    "PANNeck",
    "SemanticHead",
    "SemanticOutput",
    "TimmBackbone",
    "YoloDetector",
    "create_detector",
    "load_pretrained",
]
