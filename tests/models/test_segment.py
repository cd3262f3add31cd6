"""Segmenting detectors (task="segment"): outputs, masks from predict(), checkpoints and transfer."""


import numpy as np
import pytest
import torch

import yolotl
from yolotl.errors import ConfigError
from yolotl.inference.torch_runtime import TorchDetector
from yolotl.models import create_detector
from yolotl.models.checkpoint import checkpoint_entry

SIZE = 64
BACKBONE = "mobilenetv3_small_100"


def _detector(task: str = "segment", **kwargs) -> yolotl.YoloDetector:
    torch.manual_seed(0)
    return create_detector(BACKBONE, class_names=["a", "b"], pretrained=False, image_size=SIZE, neck_width=16,
                           task=task, **kwargs)


def _save(detector, path) -> None:
    state = {f"detector.{k}": v for k, v in detector.state_dict().items()}
    torch.save({"state_dict": state, "yolotl": checkpoint_entry(detector)}, path)


def _mask_branch(names) -> list[str]:
    return sorted(n for n in names if n.startswith(("head.coef_branches.", "head.proto.")))


def test_segmenting_head_outputs_coefficients_per_level_and_stride_4_prototypes() -> None:
    detector = _detector(num_protos=8).eval()
    outputs = detector(torch.rand(2, 3, SIZE, 96))
    assert [tuple(m.shape) for m in outputs.coef_maps] == [(2, 8, 8, 12), (2, 8, 4, 6), (2, 8, 2, 3)]
    assert tuple(outputs.protos.shape) == (2, 8, SIZE // 4, 96 // 4)
    plain = _detector("detect")(torch.rand(1, 3, SIZE, SIZE))
    assert plain.coef_maps is None and plain.protos is None
    assert not _mask_branch(n for n, _ in _detector("detect").named_parameters())


def test_the_mask_branch_comes_after_every_detection_weight_unchanged() -> None:
    """Same seed: a segmenting detector's detection weights equal a detector's, in the same order."""
    detect, segment = _detector("detect").state_dict(), _detector("segment").state_dict()
    assert list(segment)[: len(detect)] == list(detect)
    assert all(torch.equal(detect[k], segment[k]) for k in detect)


def test_predict_returns_masks_aligned_with_boxes_in_original_pixels() -> None:
    detector = _detector().eval()
    with torch.no_grad():  # prototypes positive everywhere, coefficients 1: each mask is its box
        detector.head.proto.out.bn.weight.zero_()
        detector.head.proto.out.bn.bias.fill_(5.0)
        for branch in detector.head.coef_branches:
            branch[-1].weight.zero_()
            branch[-1].bias.fill_(1.0)
    image = np.random.default_rng(0).integers(0, 255, (40, 100, 3), dtype=np.uint8)  # letterboxed, padded in y
    runtime = TorchDetector(detector)
    for result in [runtime.predict(image, score_threshold=0.0, max_detections=20),
                   runtime.predict([image, torch.from_numpy(image).permute(2, 0, 1)], score_threshold=0.0,
                                   max_detections=20)]:
        det = result[0]
        assert det["masks"].dtype == torch.bool and det["masks"].shape == (len(det["boxes"]), 40, 100)
        checked = 0
        for box, mask in zip(det["boxes"], det["masks"]):
            if (box[2] - box[0]) < 4 or (box[3] - box[1]) < 4:
                continue  # a box thinner than an input pixel or two may hold no mask pixel
            ys, xs = mask.nonzero(as_tuple=True)
            found = torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32)
            assert torch.allclose(found, box, atol=2.5), (found, box)
            checked += 1
        assert checked >= 3
    assert "masks" not in runtime.predict(image, masks=False)[0]


def test_a_detection_only_detector_asked_for_masks_says_so() -> None:
    runtime = TorchDetector(_detector("detect"))
    assert "masks" not in runtime.predict(np.zeros((32, 32, 3), np.uint8))[0]
    with pytest.raises(ConfigError, match="task=detect"):
        runtime.predict(np.zeros((32, 32, 3), np.uint8), masks=True)
    with pytest.raises(ConfigError, match="task="):
        create_detector(BACKBONE, num_classes=1, pretrained=False, task="segmentation")


def test_a_segmenting_checkpoint_reloads_as_one(tmp_path) -> None:
    detector = _detector(num_protos=8).eval()
    _save(detector, tmp_path / "seg.ckpt")
    loaded = yolotl.load(tmp_path / "seg.ckpt").detector
    assert loaded.segments and loaded.config.num_protos == 8
    images = torch.rand(1, 3, SIZE, SIZE)
    with torch.no_grad():
        assert torch.equal(loaded(images).protos, detector(images).protos)


def test_init_from_a_detector_keeps_shared_weights_and_starts_the_mask_branch_fresh(tmp_path) -> None:
    source = _detector("detect")
    _save(source, tmp_path / "det.ckpt")
    segment = create_detector(BACKBONE, class_names=["a", "b"], pretrained=False, image_size=SIZE, neck_width=16,
                              init_from=tmp_path / "det.ckpt", task="segment")
    assert segment.segments
    state, shared = segment.state_dict(), source.state_dict()
    assert all(torch.equal(state[k], v) for k, v in shared.items())
    assert sorted(segment.load_report.missing) == _mask_branch(state) and segment.load_report.missing
    assert segment.load_report.loaded == len(shared)
