"""Semantic segmenters (task="semantic"): the head's outputs, the loss, checkpoints, transfer and freezing."""

import math

import pytest
import torch

import yolotl
from yolotl.errors import ConfigError
from yolotl.models import SemanticOutput, create_detector
from yolotl.models.checkpoint import checkpoint_entry, load
from yolotl.models.freezing import select
from yolotl.ops.semantic import IGNORE_INDEX, dice_loss, semantic_loss, unletterbox_logits

SIZE = 64
BACKBONE = "mobilenetv3_small_100"


def _model(task: str = "semantic", names=("background", "a", "b"), **kwargs) -> yolotl.YoloDetector:
    torch.manual_seed(0)
    return create_detector(BACKBONE, class_names=list(names), pretrained=False, image_size=SIZE, neck_width=16,
                           task=task, **kwargs)


def _save(detector, path) -> None:
    state = {f"detector.{k}": v for k, v in detector.state_dict().items()}
    torch.save({"state_dict": state, "yolotl": checkpoint_entry(detector)}, path)


def test_semantic_head_gives_class_logits_at_stride_8_and_probabilities_at_input_size() -> None:
    model = _model().eval()
    outputs = model(torch.rand(2, 3, SIZE, 96))
    assert isinstance(outputs, SemanticOutput)
    assert tuple(outputs.logits.shape) == (2, 3, SIZE // 8, 96 // 8)
    probs = model.segment_pixels(torch.rand(2, 3, SIZE, 96))
    assert tuple(probs.shape) == (2, 3, SIZE, 96)
    assert torch.allclose(probs.sum(1), torch.ones(2, SIZE, 96), atol=1e-5)
    assert model.semantic and not model.segments
    assert not any(n.startswith("head.cls_branches") for n, _ in model.named_parameters())


def test_semantic_model_refuses_box_decoding_and_detectors_refuse_segment_pixels() -> None:
    with pytest.raises(ConfigError, match="segment_pixels"):
        _model().detect(torch.rand(1, 3, SIZE, SIZE))
    with pytest.raises(ConfigError, match="task=semantic"):
        _model("detect").segment_pixels(torch.rand(1, 3, SIZE, SIZE))
    with pytest.raises(ConfigError, match="nms_free"):
        _model(nms_free=True)


def test_loss_ignores_ignore_pixels_and_is_zero_with_gradients_when_nothing_is_labelled() -> None:
    logits = torch.randn(2, 3, 8, 8, requires_grad=True)
    target = torch.randint(0, 3, (2, 64, 64))
    changed = target.clone()
    changed[:, :32] = IGNORE_INDEX
    other = target.clone()
    other[:, :32] = (target[:, :32] + 1) % 3  # different truth only where it is ignored
    other_ignored = other.clone()
    other_ignored[:, :32] = IGNORE_INDEX
    assert torch.allclose(semantic_loss(logits, changed).total, semantic_loss(logits, other_ignored).total)
    assert not torch.allclose(semantic_loss(logits, target).total, semantic_loss(logits, other).total)
    empty = semantic_loss(logits, torch.full((2, 64, 64), IGNORE_INDEX), dice_weight=1.0)
    assert float(empty.total.detach()) == 0.0 and math.isfinite(float(empty.total.detach()))
    empty.total.backward()
    assert logits.grad is not None


def test_class_weights_and_dice_change_the_loss_as_documented() -> None:
    torch.manual_seed(1)
    logits = torch.randn(1, 2, 4, 4)
    target = torch.zeros(1, 32, 32, dtype=torch.long)
    target[:, :4] = 1  # a rare class
    plain = semantic_loss(logits, target)
    weighted = semantic_loss(logits, target, class_weights=torch.tensor([1.0, 1.0]))
    assert torch.allclose(plain.total, weighted.total)
    boosted = semantic_loss(logits, target, class_weights=torch.tensor([1.0, 10.0]))
    assert not torch.allclose(plain.total, boosted.total)
    perfect = torch.full((1, 2, 32, 32), -20.0)
    perfect[:, 0][target[0][None] == 0] = 20.0
    perfect[:, 1][target[0][None] == 1] = 20.0
    assert float(dice_loss(perfect, target)) < 1e-3
    with_dice = semantic_loss(logits, target, dice_weight=0.5)
    assert torch.allclose(with_dice.total, with_dice.ce + 0.5 * with_dice.dice)


def test_unletterbox_logits_maps_the_letterboxed_content_back_to_the_original_pixels() -> None:
    # A 100x50 (w x h) image letterboxed to 64: scale 0.64, 32x64 content, padded 16 rows on top.
    size, scale, pad = 64, 0.64, (0.0, 16.0)
    logits = torch.zeros(2, size, size)
    logits[1, 16:48, :32] = 10.0  # class 1 on the content's left half, class 0 elsewhere
    original = unletterbox_logits(logits, size, scale, pad, (50, 100)).argmax(0)
    assert tuple(original.shape) == (50, 100)
    assert bool((original[:, :48] == 1).all()) and bool((original[:, 52:] == 0).all())


def test_checkpoint_reload_gives_the_same_probabilities(tmp_path) -> None:
    model = _model().eval()
    _save(model, tmp_path / "sem.ckpt")
    loaded = load(tmp_path / "sem.ckpt")
    images = torch.rand(2, 3, SIZE, SIZE)
    assert loaded.semantic and loaded.class_names == ["background", "a", "b"]
    assert torch.equal(model.segment_pixels(images), loaded.segment_pixels(images))


def test_init_from_a_detector_keeps_backbone_and_neck_and_starts_the_head_fresh(tmp_path) -> None:
    detector = _model("detect", names=("a", "b"))
    _save(detector, tmp_path / "det.ckpt")
    semantic = create_detector(BACKBONE, class_names=["background", "a", "b"], image_size=SIZE, neck_width=16,
                               task="semantic", init_from=tmp_path / "det.ckpt")
    source = detector.state_dict()
    for name, tensor in semantic.state_dict().items():
        if name.startswith(("backbone.", "neck.")):
            assert torch.equal(tensor, source[name]), name
    assert all(n.startswith("head.") for n in semantic.load_report.missing)
    assert any(n.startswith("head.classifier") for n in semantic.load_report.missing)
    assert not semantic.class_transfer.kept  # no class rows: a detector has no pixel classifier


def test_init_from_a_segmenter_keeps_class_rows_by_name(tmp_path) -> None:
    source = _model(names=("background", "a", "b"))
    _save(source, tmp_path / "sem.ckpt")
    target = create_detector(BACKBONE, class_names=["b", "background", "c"], image_size=SIZE, neck_width=16,
                             task="semantic", init_from=tmp_path / "sem.ckpt")
    weight, source_weight = target.head.classifier.weight, source.head.classifier.weight
    assert torch.equal(weight[0], source_weight[2]) and torch.equal(weight[1], source_weight[0])
    assert target.class_transfer.new == ["c"]


def test_strategies_select_the_semantic_head_as_the_head() -> None:
    model = _model()
    head = select(model, "head")
    assert head and all(n.startswith("head.") for n in head)
    assert "head.classifier.weight" in head
