"""Detector-to-detector transfer: weights by name and shape, class rows by class name."""

import math

import pytest
import torch

from yolotl import ConfigError, create_detector
from yolotl.models.checkpoint import checkpoint_entry
from yolotl.models.head import class_prior


def save_detector(detector, path):
    torch.save({"state_dict": {f"detector.{k}": v for k, v in detector.state_dict().items()},
                "yolotl": checkpoint_entry(detector)}, path)
    return path


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    torch.manual_seed(0)
    detector = create_detector("efficientnet_lite0", class_names=["cat", "dog", "bird"], pretrained=False,
                               image_size=64, neck_width=16)
    for branch in detector.head.cls_branches:  # distinct rows, so a copied row is recognisable
        torch.nn.init.normal_(branch[-1].weight)
        torch.nn.init.normal_(branch[-1].bias)
    return detector, save_detector(detector, tmp_path_factory.mktemp("src") / "source.ckpt")


def _cls_rows(detector, index):
    return [(b[-1].weight[index].clone(), b[-1].bias[index].clone()) for b in detector.head.cls_branches]


def _same_rows(a, b):
    return all(torch.equal(wa, wb) and torch.equal(ba, bb) for (wa, ba), (wb, bb) in zip(a, b))


def test_matching_class_rows_are_kept_and_others_start_fresh(source):
    detector_src, path = source
    new = create_detector("efficientnet_lite0", class_names=["Dog ", "fish"], init_from=path, image_size=96,
                          neck_width=16)
    assert _same_rows(_cls_rows(new, 0), _cls_rows(detector_src, 1))  # Dog <- dog, whatever the case
    priors = [math.log(class_prior(2, (96 // stride) ** 2)) for stride in new.strides]
    assert all(torch.allclose(b, torch.tensor(p)) for (_, b), p in zip(_cls_rows(new, 1), priors))  # fish: fresh
    src_state, new_state = detector_src.state_dict(), new.state_dict()
    shared = [k for k in src_state if not k.startswith("head.cls_branches.") or ".2." not in k]
    assert all(torch.equal(src_state[k], new_state[k]) for k in shared)  # backbone, neck, box branch, hidden
    transfer = new.class_transfer
    assert transfer.kept == {"Dog ": "dog"} and transfer.new == ["fish"] and transfer.dropped == ["cat", "bird"]
    assert "kept 1" in transfer.summary() and new.config.image_size == 96
    assert new.load_report.loaded == len(new_state) and not new.load_report.skipped_shape


def test_class_map_and_keep_old_classes(source):
    detector_src, path = source
    renamed = create_detector("efficientnet_lite0", class_names=["fish"], init_from=path, class_map={"fish": "bird"},
                              image_size=64, neck_width=16)
    assert _same_rows(_cls_rows(renamed, 0), _cls_rows(detector_src, 2))
    kept = create_detector("efficientnet_lite0", class_names=["dog", "fish"], init_from=path, keep_old_classes=True,
                           image_size=64, neck_width=16)
    assert kept.class_names == ["cat", "dog", "bird", "fish"]
    assert kept.class_transfer.old_only == ["cat", "bird"]  # dog is labelled in the new data
    assert all(_same_rows(_cls_rows(kept, i), _cls_rows(detector_src, i)) for i in range(3))


def test_transfer_errors_name_the_fix(source, tmp_path):
    _, path = source
    with pytest.raises(ConfigError, match=r"neck_width=16 \(not 32\)"):
        create_detector("efficientnet_lite0", class_names=["dog"], init_from=path, image_size=64, neck_width=32)
    with pytest.raises(ConfigError, match="class_map .* names classes that do not exist"):
        create_detector("efficientnet_lite0", class_names=["dog"], init_from=path, class_map={"dog": "horse"},
                        image_size=64, neck_width=16)
    with pytest.raises(ConfigError, match="need init_from"):
        create_detector("efficientnet_lite0", class_names=["dog"], keep_old_classes=True, pretrained=False)


def test_a_wider_class_branch_gets_fresh_rows_and_says_so(source):
    _, path = source  # neck_width 16, 3 classes: class branch 16 wide; 20 classes make it 20 wide
    names = ["dog", *[f"c{i}" for i in range(19)]]
    new = create_detector("efficientnet_lite0", class_names=names, init_from=path, image_size=64, neck_width=16)
    assert new.class_transfer.kept == {} and len(new.class_transfer.new) == 20
    assert any(k.startswith("head.cls_branches.") for k in new.load_report.skipped_shape)
