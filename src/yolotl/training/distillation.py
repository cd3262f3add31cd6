"""Knowledge distillation from a frozen teacher detector to the student being trained.

Two dense terms, computed on the raw head outputs of both detectors for the same images:

- ``kd_cls``: sigmoid distillation of the class maps, ``BCE(student_logit, sigmoid(teacher_logit))``
  over every anchor point and every class the two detectors share (matched by name). It is the
  same per-class BCE the detector trains with, with the teacher's probabilities as soft targets,
  and is normalised like the detection loss: by a soft count of objects, here the sum over anchors
  of the teacher's highest matched-class probability (at least 1). Its value never reaches zero
  (the floor is the teacher's own entropy) but its gradient vanishes when the student's logits
  equal the teacher's.
- ``kd_box``: localization distillation (Zheng et al., "Localization Distillation for Dense Object
  Detection", CVPR 2022): ``T^2 * KL(softmax(teacher_bins / T) || softmax(student_bins / T))`` on
  each side's ``reg_max``-bin distribution, averaged over the 4 sides (as DFL is), weighted per
  anchor by the teacher's highest probability over all its classes (where it sees an object) and
  normalised by the sum of those weights (at least 1).

The teacher is not a registered submodule: it stays out of ``state_dict()`` and ``parameters()``
of any module that owns the :class:`Distiller`, and follows the images' device and dtype lazily.
Restricting ``classes`` to the old classes distils what a detector knew while it learns new ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from yolotl.errors import ConfigError
from yolotl.models.class_names import match_class_names, normalise_class_name
from yolotl.models.detector import YoloDetector
from yolotl.models.head import HeadOutput
from yolotl.ops.boxes import flatten_levels


class _TeacherRef:
    """Holds the teacher outside ``nn.Module`` registration (an attribute that is not a module)."""

    __slots__ = ("detector",)

    def __init__(self, detector: YoloDetector) -> None:
        self.detector = detector


def match_classes(
    student_class_names: Sequence[str],
    teacher_class_names: Sequence[str],
    classes: Sequence[str] | None = None,
) -> list[tuple[int, int]]:
    """``(student index, teacher index)`` of classes with the same name (case-insensitive, stripped).

    ``classes`` keeps only these student classes. Raises :class:`ConfigError` when a name in
    ``classes`` is not a student class, or when no class matches.
    """
    matches = match_class_names(student_class_names, teacher_class_names)  # a duplicated teacher name: its first
    if classes is not None:
        student = {normalise_class_name(n) for n in student_class_names}
        wanted = {normalise_class_name(n) for n in classes}
        unknown = [c for c in classes if normalise_class_name(c) not in student]
        if unknown:
            raise ConfigError(
                f"distillation classes {unknown} are not student classes {list(student_class_names)}; "
                "list student class names only (e.g. the old classes shared with the teacher)"
            )
        matches = {s: t for s, t in matches.items() if normalise_class_name(student_class_names[s]) in wanted}
    pairs = list(matches.items())
    if not pairs:
        restricted = f" restricted to {list(classes)}" if classes is not None else ""
        raise ConfigError(
            f"no class to distil: student classes {list(student_class_names)}{restricted} share no name "
            f"with teacher classes {list(teacher_class_names)}; use a teacher trained on (some of) the "
            "student's classes, or fix the class names"
        )
    return pairs


class Distiller(nn.Module):
    """A frozen teacher detector that teaches the student: class and box distillation losses.

    Args:
        teacher: a :class:`YoloDetector`, or the path of a yolotl checkpoint (read with
            :func:`yolotl.models.checkpoint.load`). It is put in eval mode and frozen in place.
        student_class_names: the student's class names, in label order.
        cls_weight: multiplier of ``kd_cls`` (0 skips the term).
        box_weight: multiplier of ``kd_box`` (0 skips the term).
        temperature: softens both box distributions in ``kd_box``.
        classes: distil only these student classes (e.g. the old ones); default: all shared classes.
    """

    def __init__(
        self,
        teacher: YoloDetector | str | Path,
        student_class_names: Sequence[str],
        cls_weight: float = 1.0,
        box_weight: float = 1.0,
        temperature: float = 2.0,
        classes: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("cls_weight", cls_weight), ("box_weight", box_weight)):
            if not (math.isfinite(float(value)) and float(value) >= 0):
                raise ConfigError(f"distillation {name} must be a finite number >= 0 (0 turns it off), got {value}")
        if not (math.isfinite(float(temperature)) and float(temperature) > 0):
            raise ConfigError(f"distillation temperature must be > 0 (LD uses 1 to 10; try 2), got {temperature}")
        if isinstance(classes, str):
            classes = [classes]
        if isinstance(teacher, (str, Path)):
            from yolotl.models.checkpoint import load

            teacher = load(teacher)
        if not isinstance(teacher, YoloDetector):
            raise ConfigError(
                f"the distillation teacher must be a YoloDetector or a yolotl checkpoint path, "
                f"got {type(teacher).__name__}"
            )
        student_class_names = [str(n) for n in student_class_names]
        if not student_class_names:
            raise ConfigError("Distiller needs the student's class names (student_class_names is empty)")
        teacher.eval().requires_grad_(False)
        # Not a submodule: no teacher tensors in the owner's state_dict, parameters() or .to().
        self._teacher_ref = _TeacherRef(teacher)
        self.student_class_names = student_class_names
        self.cls_weight = float(cls_weight)
        self.box_weight = float(box_weight)
        self.temperature = float(temperature)
        self._pairs = match_classes(student_class_names, teacher.class_names, classes)
        self.register_buffer("_student_index", torch.tensor([s for s, _ in self._pairs]), persistent=False)
        self.register_buffer("_teacher_index", torch.tensor([t for _, t in self._pairs]), persistent=False)

    @property
    def teacher(self) -> YoloDetector:
        """The frozen teacher detector (not a submodule)."""
        return self._teacher_ref.detector

    @property
    def class_pairs(self) -> list[tuple[int, int]]:
        """``(student index, teacher index)`` of every distilled class, by student index."""
        return list(self._pairs)

    def extra_repr(self) -> str:
        teacher = self.teacher.config
        return (
            f"teacher={teacher.backbone} ({teacher.num_classes} classes), classes={len(self._pairs)}, "
            f"cls_weight={self.cls_weight}, box_weight={self.box_weight}, temperature={self.temperature}"
        )

    def forward(self, images: Tensor, student: HeadOutput) -> dict[str, Tensor]:
        """``{"kd_cls", "kd_box"}``: weighted scalars, with gradients through ``student`` only.

        ``images`` are the ``[B, 3, H, W]`` RGB images in [0, 1] the student's ``student`` outputs
        were computed from; the teacher normalises them with its own mean and std.
        """
        reference = student.cls_maps[0]
        zero = reference.new_zeros((), dtype=torch.float32)
        if self.cls_weight == 0 and self.box_weight == 0:
            return {"kd_cls": zero, "kd_box": zero.clone()}
        teacher_out = self._teacher_outputs(images)
        self._check_outputs(student, teacher_out)
        student_box, student_cls = flatten_levels(student.box_maps, student.cls_maps)  # [B, A, 4, R], [B, A, C]
        teacher_box, teacher_cls = flatten_levels(teacher_out.box_maps, teacher_out.cls_maps)
        teacher_cls = teacher_cls.float()
        kd_cls = zero
        if self.cls_weight > 0:
            kd_cls = self.cls_weight * self._class_term(student_cls.float(), teacher_cls)
        kd_box = zero.clone()
        if self.box_weight > 0:
            kd_box = self.box_weight * self._box_term(student_box.float(), teacher_box.float(), teacher_cls)
        return {"kd_cls": kd_cls, "kd_box": kd_box}

    def _class_term(self, student_cls: Tensor, teacher_cls: Tensor) -> Tensor:
        index_s = self._student_index.to(student_cls.device)
        index_t = self._teacher_index.to(teacher_cls.device)
        target = teacher_cls.index_select(-1, index_t).sigmoid()  # [B, A, P]
        logits = student_cls.index_select(-1, index_s)  # [B, A, P]
        normaliser = target.amax(dim=-1).sum().clamp(min=1.0)
        return F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / normaliser

    def _box_term(self, student_box: Tensor, teacher_box: Tensor, teacher_cls: Tensor) -> Tensor:
        t = self.temperature
        teacher_log_probs = (teacher_box / t).log_softmax(dim=-1)  # [B, A, 4, R]
        student_log_probs = (student_box / t).log_softmax(dim=-1)
        kl = F.kl_div(student_log_probs, teacher_log_probs, reduction="none", log_target=True)
        per_anchor = kl.sum(dim=-1).mean(dim=-1) * (t * t)  # [B, A]
        weight = teacher_cls.sigmoid().amax(dim=-1)  # [B, A]: where the teacher sees any object
        return (per_anchor * weight).sum() / weight.sum().clamp(min=1.0)

    @torch.no_grad()
    def _teacher_outputs(self, images: Tensor) -> HeadOutput:
        teacher = self.teacher
        parameter = next(teacher.parameters())
        dtype = images.dtype if images.is_floating_point() else parameter.dtype
        if parameter.device != images.device or parameter.dtype != dtype:
            teacher.to(device=images.device, dtype=dtype)
        teacher.eval()  # cheap, and guards against a teacher put back in train mode from outside
        return teacher(images)

    def _check_outputs(self, student: HeadOutput, teacher: HeadOutput) -> None:
        teacher_reg_max = self.teacher.head.reg_max
        student_sizes = [tuple(m.shape[-2:]) for m in student.box_maps]
        teacher_sizes = [tuple(m.shape[-2:]) for m in teacher.box_maps]
        if len(student_sizes) != len(teacher_sizes) or len(student.cls_maps) != len(student_sizes):
            raise ConfigError(
                f"the student head has {len(student_sizes)} levels, the teacher's {len(teacher_sizes)} "
                f"(strides {self.teacher.strides}): distil into a student with the teacher's strides"
            )
        if student_sizes != teacher_sizes:
            raise ConfigError(
                f"student feature maps {student_sizes} differ from the teacher's {teacher_sizes} "
                f"(teacher strides {self.teacher.strides}): teacher and student must see the same image "
                "size; pass the images the student ran on, and use a student with strides "
                f"{self.teacher.strides}"
            )
        student_bins = {m.shape[1] for m in student.box_maps}
        if student_bins != {4 * teacher_reg_max}:
            found = sorted(c / 4 for c in student_bins)
            raise ConfigError(
                f"the student's box maps carry {found} bins per side, the teacher has reg_max={teacher_reg_max}: "
                f"build the student with reg_max={teacher_reg_max} to distil its boxes"
            )
        num_classes = len(self.student_class_names)
        student_classes = {m.shape[1] for m in student.cls_maps}
        if student_classes != {num_classes}:
            raise ConfigError(
                f"the student's class maps have {sorted(student_classes)} channels but Distiller got "
                f"{num_classes} student_class_names {self.student_class_names}: pass the student's class names"
            )
        if student.cls_maps[0].shape[0] != teacher.cls_maps[0].shape[0]:
            raise ConfigError(
                f"student outputs are for {student.cls_maps[0].shape[0]} images but {teacher.cls_maps[0].shape[0]} "
                "images were given: pass the batch the student ran on"
            )
