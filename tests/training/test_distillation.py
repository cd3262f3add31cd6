"""Distiller: class and box distillation from a frozen teacher, class matching, checks, no teacher in state."""

import copy

import pytest
import torch
from lightning.pytorch import LightningModule
from torch import nn

from yolotl.errors import ConfigError
from yolotl.models import YoloDetector, create_detector
from yolotl.models.checkpoint import checkpoint_entry
from yolotl.models.head import HeadOutput
from yolotl.training.callbacks import EMA
from yolotl.training.distillation import Distiller

IMAGE = 64


def tiny(class_names, seed: int = 0, reg_max: int = 16):
    torch.manual_seed(seed)
    return create_detector(
        "mobilenetv3_small_100", class_names=class_names, pretrained=False, image_size=IMAGE, neck_width=16,
        reg_max=reg_max,
    )


def give_opinions(detector, seed: int) -> None:
    """Re-initialise the last head layers so the detector's outputs are far from the flat start."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for branch in [*detector.head.box_branches, *detector.head.cls_branches]:
            layer = branch[-1]
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) * 0.3)
            layer.bias.copy_(torch.randn(layer.bias.shape, generator=generator))


@pytest.fixture(scope="module")
def teacher():
    detector = tiny(["b", "a"], seed=0)
    give_opinions(detector, 0)
    return detector.eval()


@pytest.fixture(scope="module")
def images():
    return torch.rand(2, 3, IMAGE, IMAGE, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def student():
    detector = tiny(["a", "B", "c"], seed=1)
    give_opinions(detector, 1)
    return detector


def test_a_copy_of_the_teacher_has_no_box_loss_and_no_class_gradient(teacher, images):
    student = copy.deepcopy(teacher).eval()  # eval: the same BatchNorm statistics as the teacher
    distiller = Distiller(teacher, student.class_names)
    out = student(images)
    cls_maps = [m.detach().requires_grad_() for m in out.cls_maps]
    box_maps = [m.detach().requires_grad_() for m in out.box_maps]
    losses = distiller(images, HeadOutput(box_maps, cls_maps))
    assert torch.allclose(losses["kd_box"], torch.zeros(()), atol=1e-6)
    assert float(losses["kd_cls"].detach()) > 0  # the teacher's entropy: BCE to soft targets is not 0 ...
    cls_grads = torch.autograd.grad(losses["kd_cls"], cls_maps)
    box_grads = torch.autograd.grad(losses["kd_box"], box_maps)
    assert all(torch.allclose(g, torch.zeros_like(g), atol=1e-7) for g in cls_grads)  # ... but its gradient is
    assert all(torch.allclose(g, torch.zeros_like(g), atol=1e-7) for g in box_grads)


def test_a_different_student_learns_and_the_teacher_stays_frozen(teacher, student, images):
    distiller = Distiller(teacher, student.class_names, cls_weight=1.0, box_weight=2.0)
    teacher_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student.train()
    losses = distiller(images, student(images))
    assert float(losses["kd_cls"].detach()) > 0 and float(losses["kd_box"].detach()) > 0
    assert losses["kd_cls"].requires_grad and losses["kd_box"].requires_grad
    student.zero_grad()
    (losses["kd_cls"] + losses["kd_box"]).backward()
    for part in (student.head.cls_branches[0][-1], student.head.box_branches[2][-1], student.backbone):
        assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in part.parameters())
    torch.optim.SGD(student.parameters(), lr=0.1).step()
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    assert not teacher.training
    assert all(torch.equal(v, teacher_before[k]) for k, v in teacher.state_dict().items())


def test_unmatched_student_classes_get_no_class_term(teacher, student, images):
    distiller = Distiller(teacher, student.class_names, box_weight=0.0)
    out = student(images)
    cls_maps = [m.detach().requires_grad_() for m in out.cls_maps]
    distiller(images, HeadOutput(out.box_maps, cls_maps))["kd_cls"].backward()
    assert all(float(m.grad[:, 2].abs().sum()) == 0 for m in cls_maps)  # "c": the teacher does not know it
    assert all(float(m.grad[:, :2].abs().sum()) > 0 for m in cls_maps)


def test_classes_are_matched_by_name_case_and_order_free(teacher):
    assert Distiller(teacher, ["a", "B", "c"]).class_pairs == [(0, 1), (1, 0)]
    assert Distiller(teacher, [" A ", "b"]).class_pairs == [(0, 1), (1, 0)]
    assert Distiller(teacher, ["a", "B", "c"], classes=["a"]).class_pairs == [(0, 1)]
    assert Distiller(teacher, ["a", "B", "c"], classes=["b", "c"]).class_pairs == [(1, 0)]


def test_no_shared_class_names_both_lists(teacher):
    with pytest.raises(ConfigError, match=r"\['x', 'y'\].*\['b', 'a'\]"):
        Distiller(teacher, ["x", "y"])
    with pytest.raises(ConfigError, match="no class to distil"):
        Distiller(teacher, ["a", "c"], classes=["c"])
    with pytest.raises(ConfigError, match=r"\['z'\] are not student classes"):
        Distiller(teacher, ["a", "c"], classes=["z"])


def test_teacher_from_a_checkpoint_path(teacher, student, images, tmp_path):
    path = tmp_path / "teacher.ckpt"
    state = {"detector." + k: v for k, v in teacher.state_dict().items()}
    torch.save({"state_dict": state, "yolotl": checkpoint_entry(teacher)}, path)
    from_path = Distiller(str(path), student.class_names)
    from_module = Distiller(teacher, student.class_names)
    assert from_path.teacher is not teacher and not from_path.teacher.training
    assert from_path.class_pairs == [(0, 1), (1, 0)]
    with torch.no_grad():
        out = student.eval()(images)
        a, b = from_path(images, out), from_module(images, out)
    assert torch.allclose(a["kd_cls"], b["kd_cls"]) and torch.allclose(a["kd_box"], b["kd_box"])


def test_the_teacher_is_not_part_of_the_owner(teacher, student):
    owner = nn.Module()
    owner.detector = student
    owner.distiller = Distiller(teacher, student.class_names)
    assert all(k.startswith("detector.") for k in owner.state_dict())
    teacher_ids = {id(p) for p in teacher.parameters()}
    assert not teacher_ids & {id(p) for p in owner.parameters()}
    assert len(list(owner.parameters())) == len(list(student.parameters()))
    owner.train()
    assert not teacher.training


class _Bench(LightningModule):
    def __init__(self, detector, distiller):
        super().__init__()
        self.detector = detector
        self.distiller = distiller


def test_ema_copies_and_averages_the_detector_only(teacher, student):
    ema = EMA()
    ema.setup(None, _Bench(student, Distiller(teacher, student.class_names)), "fit")
    averaged = ema._average_model.module  # Lightning's AveragedModel: a deep copy of what is averaged
    assert isinstance(averaged, YoloDetector) and averaged is not student
    assert averaged.state_dict().keys() == student.state_dict().keys()
    teacher_ids = {id(p) for p in teacher.parameters()}
    assert not teacher_ids & {id(p) for p in ema._average_model.parameters()}
    assert not any(isinstance(m, Distiller) for m in ema._average_model.modules())


def test_the_teacher_follows_the_images_dtype(teacher, images):
    frozen = copy.deepcopy(teacher)
    student = copy.deepcopy(teacher).double().eval()
    distiller = Distiller(frozen, student.class_names)
    losses = distiller(images.double(), student(images.double()))
    assert next(frozen.parameters()).dtype == torch.float64
    assert torch.allclose(losses["kd_box"], torch.zeros((), dtype=losses["kd_box"].dtype), atol=1e-9)


def test_a_different_reg_max_or_image_size_is_refused(teacher, images):
    coarse = tiny(["a", "b"], seed=2, reg_max=8)
    with torch.no_grad(), pytest.raises(ConfigError, match="reg_max=16"):
        Distiller(teacher, coarse.class_names)(images, coarse(images))
    student = tiny(["a", "b"], seed=3)
    with torch.no_grad(), pytest.raises(ConfigError, match="same image size"):
        Distiller(teacher, student.class_names)(torch.rand(2, 3, 96, 96), student(images))


def test_a_zero_weight_skips_its_term(teacher, student, images):
    with torch.no_grad():
        out = student(images)
    losses = Distiller(teacher, student.class_names, cls_weight=0.0, box_weight=0.0)(images, out)
    assert float(losses["kd_cls"]) == 0 and float(losses["kd_box"]) == 0
    only_box = Distiller(teacher, student.class_names, cls_weight=0.0, box_weight=1.0)(images, out)
    assert float(only_box["kd_cls"]) == 0 and float(only_box["kd_box"]) > 0


@pytest.mark.parametrize(
    "kwargs, message",
    [({"cls_weight": -1.0}, "cls_weight"), ({"box_weight": float("nan")}, "box_weight"),
     ({"temperature": 0.0}, "temperature")],
)
def test_bad_weights_and_temperature_are_refused(teacher, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        Distiller(teacher, ["a"], **kwargs)
