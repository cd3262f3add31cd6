"""Class weights in the classification loss: the scheme, the loss effect, the config checks."""

from __future__ import annotations

import logging
import math

import pytest
import torch

from tests.training.conftest import fit
from yolotl.errors import ConfigError
from yolotl.ops import DetectionLoss
from yolotl.training.class_weights import check_class_weights, inverse_sqrt_weights


def test_inverse_sqrt_weights() -> None:
    assert inverse_sqrt_weights([100, 25, 16]) == pytest.approx([1.0, 2.0, 2.5])


def test_absent_and_rare_classes_get_bounded_weights() -> None:
    # no training box: nothing to up-weight (was the largest weight: sqrt(n_max))
    assert inverse_sqrt_weights([497, 0, 100]) == pytest.approx([1.0, 1.0, math.sqrt(4.97)])
    # under 5 boxes: at most the largest weight of the classes with 5 or more (was 5.0 and 10.0)
    assert inverse_sqrt_weights([100, 25, 4, 0]) == pytest.approx([1.0, 2.0, 2.0, 1.0])
    assert inverse_sqrt_weights([10_000, 1, 30]) == pytest.approx([1.0, math.sqrt(10_000 / 30), math.sqrt(10_000 / 30)])
    assert inverse_sqrt_weights([40, 1, 2]) == [1.0, 1.0, 1.0]  # only the top class is trusted
    assert inverse_sqrt_weights([3, 1, 0]) == [1.0, 1.0, 1.0]  # every class has only a few boxes


def test_classes_with_enough_boxes_keep_their_weights() -> None:
    # Aquarium's training boxes per class (fish ... starfish 45): the default measured there, unchanged
    aquarium = [1805, 354, 283, 130, 182, 45, 79]
    assert inverse_sqrt_weights(aquarium) == pytest.approx([math.sqrt(1805 / n) for n in aquarium])


def test_bad_class_weights_are_config_errors() -> None:
    check_class_weights(None, 3)
    check_class_weights("inverse_sqrt", 3)
    check_class_weights([1.0, 2, 0.5], 3)
    with pytest.raises(ConfigError, match="not a scheme"):
        check_class_weights("balanced", 3)
    with pytest.raises(ConfigError, match="3 positive finite numbers"):
        check_class_weights([1.0, 2.0], 3)
    with pytest.raises(ConfigError, match="3 positive finite numbers"):
        check_class_weights([1.0, -2.0, 1.0], 3)
    with pytest.raises(ConfigError, match="finite"):
        check_class_weights([1.0, math.inf, 1.0], 3)


def _inputs(num_classes: int = 3) -> tuple[list, list, list, list]:
    torch.manual_seed(0)
    strides = [8, 16]
    box_maps = [torch.randn(1, 4 * 16, 64 // s, 64 // s) for s in strides]
    cls_maps = [torch.randn(1, num_classes, 64 // s, 64 // s) for s in strides]
    targets = [{"boxes": torch.tensor([[8.0, 8.0, 40.0, 40.0]]), "labels": torch.tensor([2])}]
    return box_maps, cls_maps, strides, targets


def test_weighting_the_target_class_raises_only_the_class_term() -> None:
    loss = DetectionLoss(3)
    plain = loss(*_inputs())
    loss.set_class_weights([1.0, 1.0, 4.0])  # the object's class
    weighted = loss(*_inputs())
    assert weighted.cls > plain.cls
    assert weighted.box == pytest.approx(plain.box) and weighted.dfl == pytest.approx(plain.dfl)
    loss.set_class_weights([4.0, 4.0, 1.0])  # other classes: no positives, so no change
    assert loss(*_inputs()).cls == pytest.approx(plain.cls)
    loss.set_class_weights(None)
    assert loss(*_inputs()).cls == pytest.approx(plain.cls)
    with pytest.raises(ValueError, match="3 positive finite"):
        loss.set_class_weights([1.0, math.nan, 1.0])
    assert "class_weights" not in loss.state_dict()  # not persisted: resolved again at setup


@pytest.mark.slow
def test_without_a_datamodule_the_default_weights_warn_and_stay_off(make_module, caplog) -> None:
    module = make_module()
    assert module.loss_weights.classes == "inverse_sqrt"  # the default
    with caplog.at_level(logging.WARNING, logger="yolotl.train"):
        fit(module, [], epochs=1)
    assert module.loss.class_weights is None
    assert [r for r in caplog.records if "unweighted classes" in r.getMessage()]
