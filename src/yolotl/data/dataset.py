"""A torch Dataset over :class:`ImageRecord` s, and the collate function for detection batches."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from yolotl.constants import IGNORE_INDEX
from yolotl.data.cache import ImageCache, read_image
from yolotl.data.class_maps import class_map, object_mask
from yolotl.data.records import ImageRecord
from yolotl.data.sampling import SampleKey
from yolotl.data.segments import masks_to_boxes
from yolotl.data.transforms import build_eval_transforms, letterbox_params
from yolotl.errors import ConfigError

__all__ = ["DetectionDataset", "boxes_in_decoded_frame", "collate_detections", "object_masks", "read_image"]

_LOG = logging.getLogger("yolotl.data")

Target = dict[str, Any]


class DetectionDataset(Dataset):
    """Images and targets of a list of records, passed through an albumentations transform.

    ``dataset[i]`` returns ``(image, target)``: ``image`` float32 ``[3, H, W]`` in [0, 1]
    (not normalised: the detector normalises) and ``target`` with ``boxes`` float32 ``[N, 4]``
    xyxy in input pixels, ``labels`` int64 ``[N]``, ``iscrowd`` bool ``[N]`` (the objects
    evaluation ignores: :attr:`ImageRecord.ignored`), ``image_id`` (the index), ``orig_size``
    int64 ``[h, w]``, ``scale`` and ``pad`` ``[pad_x, pad_y]`` of the eval letterbox (for eval
    samples original pixels are ``(input - pad) / scale``; for train samples they are only
    informative) and ``path``. ``transform=None`` means the eval letterbox.

    Training samples are indexed by a :class:`SampleKey` from the :class:`TrainSampler`:
    ``key.mosaic`` names three more images for ``mosaic_transform``, ``key.mixup`` a sample
    blended in (weight ~ Beta(32, 32), boxes of both kept). ``cache`` (an :class:`ImageCache`)
    serves decoded images; without one every access decodes the file.

    Targets hold every object of the records, crowd regions included (evaluation needs them in
    input pixels); to train, pass :meth:`ImageRecord.for_training` records, as the DataModule does.

    With ``masks=True`` and records that carry segments (:attr:`with_masks`; a detection run leaves
    it off, so outlines in COCO or YOLO-seg files cost nothing and boxes stay as annotated), targets
    also hold ``masks`` uint8
    ``[N, H, W]`` at the input size: each object's outline is rasterised in the frame of the image
    the sample starts from (an object without one gets its box) and goes through the same
    albumentations steps as the image, as one channel of a ``[H, W, N]`` ``mask`` (the target
    ``Mosaic`` carries). Each box is then its mask's box, and an object whose mask came out empty is
    dropped with its box, so masks, boxes, labels and flags stay aligned whatever cropped them.

    With ``semantic=True`` targets also hold ``semantic`` int64 ``[H, W]`` at the input size: a
    class index per pixel, or :data:`~yolotl.constants.IGNORE_INDEX` where nothing trains
    (letterbox padding and whatever an augmentation filled, given pipelines built with
    ``mask_fill=IGNORE_INDEX`` as the default letterbox and the DataModule's are). A record's
    ``semantic_mask`` is read (:func:`~yolotl.data.class_maps.class_map`); an instance record's
    objects are rasterised (background 0, label + 1, crowd regions ignored: pass the records as
    read, not :meth:`ImageRecord.for_training`). The map travels as albumentations' ``mask`` with
    the image (mosaic included); ``boxes``, ``labels`` and ``iscrowd`` stay empty. Mixup keys are
    ignored (blending two label maps has no right answer; logged once).
    """

    def __init__(
        self,
        records: Sequence[ImageRecord],
        transform: Callable[..., dict[str, Any]] | None = None,
        image_size: int = 416,
        mosaic_transform: Callable[..., dict[str, Any]] | None = None,
        cache: ImageCache | None = None,
        masks: bool = False,
        semantic: bool = False,
    ) -> None:
        if masks and semantic:
            raise ConfigError("masks=True (instance masks) and semantic=True (class maps) exclude each "
                              "other; pick the one the task needs.")
        self.records = list(records)
        self.image_size = image_size
        self.semantic = bool(semantic)
        self.transform = transform if transform is not None else build_eval_transforms(
            image_size, mask_fill=IGNORE_INDEX if self.semantic else 0)
        self.mosaic_transform = mosaic_transform
        self.cache = cache if cache is not None else ImageCache("none")
        self._rescaled_warned: set[Path] = set()  # images whose stale size was logged (once each)
        self.with_masks = masks and any(record.segments is not None for record in self.records)
        self._mixup_warned = False

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: int | SampleKey) -> tuple[torch.Tensor, Target]:
        key = key if isinstance(key, SampleKey) else SampleKey(int(key))
        if key.mosaic and self.mosaic_transform is None:
            raise ValueError("a mosaic sample was requested but the dataset has no mosaic_transform")
        if key.seed is not None:
            seed_pipelines((self.transform, self.mosaic_transform), key.seed)
        if self.semantic:
            if key.mixup >= 0 and not self._mixup_warned:
                self._mixup_warned = True
                _LOG.info("mixup is off for semantic segmentation samples (blending two class maps "
                          "has no right answer); mixup keys are ignored")
            image, pixel_classes = self._augmented_semantic(key.index, key.mosaic)
            empty = np.zeros((0, 4), np.float32)
            return self._pack(key.index, image, empty, np.zeros(0, np.int64), np.zeros(0, bool), None,
                              pixel_classes)
        image, boxes, labels, ignored, masks = self._augmented(key.index, key.mosaic)
        if key.mixup >= 0:
            other, other_boxes, other_labels, other_ignored, other_masks = self._augmented(key.mixup, ())
            rng = np.random.default_rng(key.seed) if key.seed is not None else np.random
            weight = float(rng.beta(32.0, 32.0))
            image = (image.astype(np.float32) * weight + other.astype(np.float32) * (1 - weight))
            image = image.round().clip(0, 255).astype(np.uint8)
            boxes = np.concatenate([boxes, other_boxes])
            labels = np.concatenate([labels, other_labels])
            ignored = np.concatenate([ignored, other_ignored])
            if masks is not None:
                masks = np.concatenate([masks, other_masks], axis=2)
        return self._pack(key.index, image, boxes, labels, ignored, masks)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Decoded (possibly cached, downsized) image with its boxes in that image's pixels."""
        record = self.records[index]
        image, (height, width) = self.cache.get(record.image_path)
        boxes = boxes_in_decoded_frame(record, height, width, self._rescaled_warned)
        if image.shape[:2] != (height, width):
            factors = np.array([image.shape[1] / width, image.shape[0] / height] * 2, np.float32)
            boxes = boxes * factors
        return image, boxes, record.labels

    def load_class_map(self, index: int, height: int, width: int, boxes: np.ndarray) -> np.ndarray:
        """uint8 ``[height, width]`` class map of record ``index`` in the frame of its loaded image
        (whose ``boxes`` fill objects without an outline): its mask, resized with nearest neighbour
        when the cache downsized the image, or its objects rasterised."""
        return class_map(self.records[index], height, width, boxes, self.original_size(index))

    def load_masks(self, index: int, height: int, width: int, boxes: np.ndarray) -> np.ndarray:
        """uint8 ``[height, width, N]`` masks of record ``index`` in the frame of its loaded image
        (whose ``boxes`` fill the masks of objects without a segment)."""
        return object_masks(self.records[index], boxes, height, width)

    def original_size(self, index: int) -> tuple[int, int]:
        """(height, width) of the decoded original image (the cache knows it without decoding)."""
        return self.cache.original_size(self.records[index].image_path)

    def _augmented(
        self, index: int, mosaic: tuple[int, ...]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """Transformed image, boxes, labels, ignore flags and masks (None without :attr:`with_masks`)
        of ``index`` (mosaicked with ``mosaic``).

        The transform's ``labels`` field carries each box's position among the objects of the
        images taken, so labels, flags and mask channels follow whichever boxes it keeps, in its
        order. Each image's masks sit in their own channels of one ``[H, W, N]`` mask over all the
        images taken (zeros elsewhere), as the mosaic needs one channel count."""
        indices = (index, *mosaic)
        loaded = [self.load(i) for i in indices]
        labels = np.concatenate([item[2] for item in loaded]).astype(np.int64)
        ignored = np.concatenate([self.records[i].ignored for i in indices])
        starts = np.cumsum([0] + [len(item[2]) for item in loaded])
        positions = [np.arange(start, end) for start, end in zip(starts[:-1], starts[1:])]
        items = [{"image": image, "bboxes": boxes, "labels": where}
                 for (image, boxes, _), where in zip(loaded, positions)]
        carry_masks = self.with_masks and starts[-1] > 0
        if carry_masks:
            for i, item, start, end in zip(indices, items, starts[:-1], starts[1:]):
                height, width = item["image"].shape[:2]
                item["mask"] = np.zeros((height, width, starts[-1]), dtype=np.uint8)
                item["mask"][..., start:end] = self.load_masks(i, height, width, item["bboxes"])
        if not mosaic:
            out = self.transform(**items[0])
        else:
            out = self.mosaic_transform(**items[0], mosaic_metadata=items[1:])
        kept = np.asarray(out["labels"], np.int64).reshape(-1)
        boxes = np.asarray(out["bboxes"], np.float32).reshape(-1, 4)
        if not self.with_masks:
            return out["image"], boxes, labels[kept], ignored[kept], None
        height, width = out["image"].shape[:2]
        masks = out["mask"][..., kept] if carry_masks else np.zeros((height, width, 0), np.uint8)
        boxes, present = masks_to_boxes(masks)
        return (out["image"], boxes[present], labels[kept][present], ignored[kept][present],
                masks[..., present])

    def _augmented_semantic(self, index: int, mosaic: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Transformed image and uint8 class map of ``index`` (mosaicked with ``mosaic``)."""
        items = []
        for i in (index, *mosaic):
            image, boxes, _ = self.load(i)
            height, width = image.shape[:2]
            items.append({"image": image, "bboxes": np.zeros((0, 4), np.float32),
                          "labels": np.zeros(0, np.int64),
                          "mask": self.load_class_map(i, height, width, boxes)})
        if not mosaic:
            out = self.transform(**items[0])
        else:
            out = self.mosaic_transform(**items[0], mosaic_metadata=items[1:])
        return out["image"], out["mask"]

    def _pack(self, index: int, image: np.ndarray, boxes: np.ndarray, labels: np.ndarray,
              ignored: np.ndarray, masks: np.ndarray | None,
              semantic: np.ndarray | None = None) -> tuple[torch.Tensor, Target]:
        record = self.records[index]
        height, width = self.original_size(index)
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
        scale, pad_x, pad_y = letterbox_params(height, width, self.image_size)
        target = {
            "boxes": torch.as_tensor(boxes),
            "labels": torch.as_tensor(labels),
            "iscrowd": torch.as_tensor(ignored, dtype=torch.bool),
            "image_id": index,
            "orig_size": torch.tensor([height, width], dtype=torch.int64),
            "scale": float(scale),
            "pad": torch.tensor([pad_x, pad_y], dtype=torch.float32),
            "path": str(record.image_path),
        }
        if masks is not None:
            target["masks"] = torch.from_numpy(np.ascontiguousarray(masks.transpose(2, 0, 1)))
        if semantic is not None:
            target["semantic"] = torch.from_numpy(np.ascontiguousarray(semantic)).long()
        return tensor.float().div_(255.0), target


def object_masks(record: ImageRecord, boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 ``[height, width, N]`` masks of a record's objects in a ``height`` x ``width`` frame of its
    image: each outline rasterised (:meth:`Segment.rasterise`), an object without one filled to its box
    (``boxes``: xyxy in that frame). Training samples and ``yolotl-eval``'s ground truth both use it."""
    masks = np.zeros((height, width, record.num_objects), dtype=np.uint8)
    for j in range(record.num_objects):
        masks[..., j] = object_mask(record, j, boxes[j], height, width)
    return masks


def boxes_in_decoded_frame(
    record: ImageRecord, height: int, width: int, warned: set[Path] | None = None
) -> np.ndarray:
    """Record boxes, rescaled if the decoded image size differs from the annotated size.

    A stale annotated size (or an EXIF rotation the annotation ignored) would otherwise put
    every box in the wrong place; rescaling is the least surprising repair, and it is logged:
    once per image when the caller passes its ``warned`` set (the dataset keeps one, so the
    warning comes once per image, not once per epoch), else on every call.
    """
    if (record.height, record.width) == (height, width):
        return record.boxes
    if warned is None or record.image_path not in warned:
        if warned is not None:
            warned.add(record.image_path)
        _LOG.warning("%s: annotated size %dx%d but the image decodes as %dx%d; rescaling its boxes",
                     record.image_path, record.width, record.height, width, height)
    factors = np.array([width / record.width, height / record.height] * 2, dtype=np.float32)
    return np.clip(record.boxes * factors, 0, [width, height, width, height]).astype(np.float32)


def collate_detections(
    batch: Sequence[tuple[torch.Tensor, Target]],
) -> tuple[torch.Tensor, list[Target]]:
    """Stack images into ``[B, 3, H, W]`` and keep the targets as a list of dicts (per-image
    ``masks`` ``[N_i, H, W]`` and ``semantic`` ``[H, W]`` included: their object counts differ)."""
    images = torch.stack([image for image, _ in batch])
    return images, [target for _, target in batch]


def seed_pipelines(pipelines: Any, seed: int) -> None:
    """Seed albumentations pipelines with ONE generator pair, shared: a generator per pipeline from
    the same seed would give the plain and the mosaic pipeline the same random draws."""
    numpy_rng, python_rng = np.random.default_rng(seed), random.Random(seed)
    for pipeline in pipelines:
        if pipeline is not None and hasattr(pipeline, "set_random_state"):
            pipeline.set_random_state(numpy_rng, python_rng)
