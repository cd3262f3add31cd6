"""Painted pictures for the augmentation tests, and checkers that compare boxes and masks with them.

Each object is a solid shape painted in its class's colour (:data:`PALETTE`) on a plain grey
background, written to disk as a small YOLO dataset (boxes, or YOLO-seg outlines). After any
augmentation that moves pixels and targets together, a class's colour must then sit inside that
class's boxes and masks, and each box and mask must hold its class's colour. The checkers return
a list of problems (empty: aligned), so a test can also show that wrong targets ARE reported.

Colour augmentation (HSV) is switched off wherever these checkers run: they classify pixels by
exact colour (within :data:`COLOUR_TOLERANCE`), which an HSV shift of up to +-10 hue / +-40
saturation / +-30 value would break for whole objects, not only for their edges.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml

# Saturated primaries/secondaries: any two differ by 255 in at least one channel, so neither the
# grey background nor a blend of a colour with grey (interpolation at an object's edge) comes
# within COLOUR_TOLERANCE of another class's colour (test_palette_is_unambiguous checks it).
PALETTE = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255],
                    [255, 255, 0], [255, 0, 255], [0, 255, 255]], np.uint8)
CLASS_NAMES = ["red", "green", "blue", "yellow", "magenta", "cyan"]
BACKGROUND = 128  # neutral grey, distinct from the pipelines' fill grey 114 by 14 per channel
FILL = 114  # the letterbox / affine / mosaic fill (yolotl.data.transforms.PAD_VALUE)
# A pixel "is" a class colour when every channel is within 40 of it: a pixel at an object's edge
# blended with grey counts once it holds about 70 % colour (128 * 0.3 ~ 40), so the pure region
# ends a fraction of a pixel inside the 50 % line that a nearest-neighbour mask follows.
COLOUR_TOLERANCE = 40
# Boxes are widened by this margin when testing whether a pixel lies inside: bilinear
# interpolation spreads a painted edge over about one output pixel, so a pure-enough pixel can sit
# up to one pixel beyond the exact transformed edge.
EDGE = 1.0
# A correct box's sides each touch its object; the object's outermost pure pixel may stop short by
# the blended ring (EDGE) plus, at a rotated corner, a tip too thin to be pure (~1 px more).
TIGHT = 2.0
# Cut pieces thinner than this may hold no pure pixel at all after blending (70 % colour needed).
SLIVER = 3.0
# Masks versus the picture: edges may disagree by MASK_RING px all round, the blended edge ring
# (see EDGE and COLOUR_TOLERANCE). It was 2 while the mask raster had two biases of under a pixel
# each that added up after a zoom (Segment.rasterise filled pixels an outline only touched; the
# letterbox/mosaic resized masks with cv2.INTER_NEAREST, shifting them right/down when enlarging);
# test_mask_alignment's exact tests pin both fixes.
MASK_RING = 1
MIN_MASK_AREA = 20  # smaller pieces (cut remnants): a ring bound means nothing for a few pixels
SUBSAMPLES = 4  # sample points per pixel side when painting: shares in steps of 1/16


@dataclass(frozen=True)
class Shape:
    """One painted object: ``label`` (its colour is PALETTE[label]) and a closed outline
    ``points`` ``[K, 2]`` (x, y) in continuous pixel coordinates (pixel i spans [i, i + 1))."""

    label: int
    points: np.ndarray

    @property
    def box(self) -> tuple[float, float, float, float]:
        """xyxy box of the outline."""
        (x1, y1), (x2, y2) = self.points.min(0), self.points.max(0)
        return float(x1), float(y1), float(x2), float(y2)


@dataclass(frozen=True)
class Scene:
    """One image: its size and the objects painted on it (none overlapping)."""

    width: int
    height: int
    shapes: tuple[Shape, ...]


def rectangle(label: int, x1: int, y1: int, x2: int, y2: int) -> Shape:
    """An axis-aligned rectangle on whole pixels: its box is exactly the painted pixels."""
    return Shape(label, np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], np.float64))


def ellipse(label: int, cx: float, cy: float, rx: float, ry: float, points: int = 32) -> Shape:
    """An ellipse outline as a ``points``-gon (the outline a YOLO-seg or COCO file would hold)."""
    angles = np.linspace(0, 2 * np.pi, points, endpoint=False)
    return Shape(label, np.stack([cx + rx * np.cos(angles), cy + ry * np.sin(angles)], 1))


def inside(points: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """bool array: whether each point (``x``, ``y``) lies inside the closed polygon ``points``
    (even-odd rule: a ray to the right crosses its edges an odd number of times)."""
    result = np.zeros(np.broadcast(x, y).shape, bool)
    for (x1, y1), (x2, y2) in zip(points, np.roll(points, -1, axis=0)):
        if y1 == y2:
            continue  # a horizontal edge is never crossed by a horizontal ray
        spans = (y1 <= y) != (y2 <= y)
        crossing = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
        result ^= spans & (x < crossing)
    return result


def coverage(points: np.ndarray, height: int, width: int, samples: int = SUBSAMPLES) -> np.ndarray:
    """float ``[height, width]``: the share of each pixel (pixel i spans [i, i + 1)) inside the
    polygon ``points``, from ``samples`` x ``samples`` sample points per pixel."""
    offsets = (np.arange(samples) + 0.5) / samples
    ys = (np.arange(height)[:, None] + offsets[None, :]).reshape(-1)
    xs = (np.arange(width)[:, None] + offsets[None, :]).reshape(-1)
    hits = inside(points, xs[None, :], ys[:, None])
    return hits.reshape(height, samples, width, samples).mean(axis=(1, 3))


def paint(scene: Scene) -> np.ndarray:
    """RGB uint8 image of the scene: grey background, each shape blended in its colour by the share
    of each pixel it covers (an anti-aliased picture, as a camera would see it). A whole-pixel
    rectangle fills exactly the pixels of its box: no sample point lies on its edges."""
    image = np.full((scene.height, scene.width, 3), BACKGROUND, np.float64)
    for shape in scene.shapes:
        share = coverage(shape.points, scene.height, scene.width)[..., None]
        image = image * (1 - share) + PALETTE[shape.label] * share
    return np.round(image).astype(np.uint8)


def write_yolo(root: Path, scenes: list[Scene], outlines: bool = False) -> Path:
    """Write ``scenes`` as a YOLO dataset (split ``train``, lossless PNG images) and return root.

    Each label line is the shape's box (``class cx cy w h``) or, with ``outlines``, its polygon
    (YOLO-seg ``class x1 y1 ... xn yn``), normalised by the image size."""
    images, labels = root / "train" / "images", root / "train" / "labels"
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    for i, scene in enumerate(scenes):
        assert cv2.imwrite(str(images / f"{i}.png"), paint(scene)[..., ::-1])
        lines = []
        for shape in scene.shapes:
            size = np.array([scene.width, scene.height], np.float64)
            if outlines:
                values = (shape.points / size).reshape(-1)
            else:
                x1, y1, x2, y2 = shape.box
                values = np.array([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]) / np.tile(size, 2)
            lines.append(" ".join([str(shape.label), *(f"{v:.7f}" for v in values)]))
        (labels / f"{i}.txt").write_text("\n".join(lines) + "\n")
    (root / "data.yaml").write_text(yaml.safe_dump({"train": "train/images", "names": CLASS_NAMES}))
    return root


def colour_pixels(image: np.ndarray, label: int) -> np.ndarray:
    """bool ``[H, W]``: the pixels of ``image`` (uint8 ``[H, W, 3]``) that have class ``label``'s
    colour, within COLOUR_TOLERANCE on every channel."""
    difference = np.abs(image.astype(np.int16) - PALETTE[label].astype(np.int16))
    return difference.max(axis=2) <= COLOUR_TOLERANCE


def fill_pixels(image: np.ndarray) -> np.ndarray:
    """bool ``[H, W]``: pixels of the pipelines' fill grey (within 3: nothing else is that grey
    but fill blended with at most ~20 % background)."""
    return (np.abs(image.astype(np.int16) - FILL) <= 3).all(axis=2)


def pixel_span(low: float, high: float, size: int) -> slice:
    """The pixels whose centres (i + 0.5) lie in [low, high], clipped to [0, size)."""
    first = max(0, int(np.ceil(low - 0.5)))
    last = min(size - 1, int(np.floor(high - 0.5)))
    return slice(first, max(first, last + 1))


def box_region(box: np.ndarray, shape: tuple[int, int], margin: float) -> np.ndarray:
    """bool ``[H, W]``: pixels whose centres lie in ``box`` (xyxy) grown by ``margin`` (shrunk
    when negative)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    region = np.zeros(shape, bool)
    rows = pixel_span(y1 - margin, y2 + margin, shape[0])
    region[rows, pixel_span(x1 - margin, x2 + margin, shape[1])] = True
    return region


def reaches_cut(component: np.ndarray, fill: np.ndarray) -> bool:
    """Whether a pixel group touches the image border or the fill grey (within 2 px): where a
    crop or a shrinking affine cut the object (objects are painted at least 8 px from their
    image's edges, so a whole object stays clear of both)."""
    grown = cv2.dilate(component.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    border = grown[0].any() or grown[-1].any() or grown[:, 0].any() or grown[:, -1].any()
    return bool(border or (grown & fill).any())


def is_cut(box: np.ndarray, fill: np.ndarray) -> bool:
    """Whether a box's object was cut: the box reaches the image border (within EDGE) or comes
    within 2 px of the fill grey (a crop line that a shrinking affine moved inside the image)."""
    height, width = fill.shape
    x1, y1, x2, y2 = (float(v) for v in box)
    if min(x1, y1) <= EDGE or x2 >= width - EDGE or y2 >= height - EDGE:
        return True
    return bool(fill[box_region(box, fill.shape, 2.0)].any())


def side_gaps(colour: np.ndarray, box: np.ndarray) -> np.ndarray | None:
    """How far (px) the extent of ``colour`` pixels inside ``box`` (grown by EDGE) falls short of
    each side (left, top, right, bottom; negative: beyond it); None when there are none."""
    ys, xs = np.nonzero(colour & box_region(box, colour.shape, EDGE))
    if len(xs) == 0:
        return None
    extent = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float64)
    return (extent - box) * np.array([1, 1, -1, -1])


def box_problems(image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, min_fill: float,
                 slanted: bool = False, dropped_boxes_allowed: bool = False) -> list[str]:
    """What is wrong with ``boxes`` (xyxy ``[N, 4]``) and ``labels`` of an augmented painted image.

    (a) Each box holds its object, and only it:
        - tight: the pixels of its class colour inside it reach within TIGHT px of all four
          sides (a correct box is the enclosing box of the moved object, whose outermost pixels
          touch every side); a box that grew, shifted or took another object's label fails;
        - filled: inside the box shrunk by EDGE (interpolation blurs the outermost pixel ring),
          at least ``min_fill`` of the pixels have its colour.
        With ``slanted`` (rotation or shear), boxes of cut objects (:func:`is_cut`) need only hold
        some of their colour: a rotated piece of a cut object can be a thin slanted strip whose
        ends taper below a pixel and whose box is nearly empty, correctly. Slivers of cut objects
        under SLIVER px are exempt from (a): blending may leave no pixel pure enough to count.
    (b) Coverage: every pixel of a class colour lies in some box of that class grown by EDGE. An
        object whose box moved away, vanished, or went to another object fails. With
        ``dropped_boxes_allowed`` (pipelines that drop boxes left mostly outside the image,
        ``min_visibility`` > 0), an uncovered group of pixels is excused when it touches the
        border or the fill, i.e. it is the visible rest of a cut object.
    """
    problems = []
    shape = image.shape[:2]
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    labels = np.asarray(labels).reshape(-1)
    fill_grey = fill_pixels(image)
    for j, (box, label) in enumerate(zip(boxes, labels)):
        name = f"box {j} {np.round(box, 1).tolist()} ({CLASS_NAMES[label]})"
        colour = colour_pixels(image, int(label))
        cut = is_cut(box, fill_grey)
        if cut and min(box[2] - box[0], box[3] - box[1]) < SLIVER:
            continue
        gaps = side_gaps(colour, box)
        if gaps is None:
            problems.append(f"{name}: none of its colour inside")
        elif slanted and cut:
            continue  # a slanted piece: its ends may taper below a pixel, its box be nearly empty
        elif gaps.max() > TIGHT:
            problems.append(f"{name}: its colour falls short of its sides by {np.round(gaps, 1).tolist()} "
                            f"px (allowed {TIGHT})")
        elif (core := box_region(box, shape, -EDGE)).any() and colour[core].mean() < min_fill:
            problems.append(f"{name}: only {colour[core].mean():.0%} of it has its colour "
                            f"(need {min_fill:.0%})")
    for label in range(len(PALETTE)):
        covered = np.zeros(shape, bool)
        for box in boxes[labels == label]:
            covered |= box_region(box, shape, EDGE)
        uncovered = uncovered_colour(image, label, covered, dropped_boxes_allowed)
        if uncovered.any():
            ys, xs = np.nonzero(uncovered)
            problems.append(f"{uncovered.sum()} {CLASS_NAMES[label]} pixels lie outside every "
                            f"{CLASS_NAMES[label]} box (e.g. x={xs[0]}, y={ys[0]})")
    return problems


def worst_fill(scenes: list[Scene], degrees: float, shear: float) -> float:
    """The lowest share of its axis-aligned box that any painted shape fills after a rotation up to
    ``degrees`` and x/y shears up to ``shear`` (degrees), composed in either order, taken over a
    grid of angles that includes the extremes. Zoom and translation do not change the share.

    This is the geometric floor of a correct box's fill: a rotated rectangle leaves its box's
    corners empty (about 40 % of the box for a 2.4:1 rectangle turned 15 degrees), and rotation's box
    is the enclosing box of the turned corners."""
    def rotation(angle: float) -> np.ndarray:
        c, s = np.cos(np.radians(angle)), np.sin(np.radians(angle))
        return np.array([[c, -s], [s, c]])

    def shearing(x: float, y: float) -> np.ndarray:
        return np.array([[1.0, np.tan(np.radians(x))], [np.tan(np.radians(y)), 1.0]])

    grid = np.linspace(-1, 1, 5)
    maps = [m for a in grid * degrees for x in grid * shear for y in grid * shear
            for m in (rotation(a) @ shearing(x, y), shearing(x, y) @ rotation(a))]
    worst = 1.0
    for shape in (shape for scene in scenes for shape in scene.shapes):
        x, y = shape.points[:, 0], shape.points[:, 1]
        area = abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2
        for linear in maps:
            moved = shape.points @ linear.T
            box_area = np.prod(moved.max(0) - moved.min(0))
            worst = min(worst, area * abs(np.linalg.det(linear)) / box_area)
    return float(worst)


def ring_iou_bound(mask: np.ndarray, width: int) -> float:
    """The IoU of ``mask`` with itself grown or shrunk by ``width`` pixels all round: the lowest IoU
    of two rasters of one object whose edges disagree by at most that much."""
    kernel = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
    mask8 = mask.astype(np.uint8)
    # replicated borders: where the image border cuts an object, mask and picture agree exactly
    inner = cv2.erode(mask8, kernel, borderType=cv2.BORDER_REPLICATE).astype(bool)
    outer = cv2.dilate(mask8, kernel, borderType=cv2.BORDER_REPLICATE).astype(bool)
    area = mask.sum()
    return float(min(inner.sum() / area, area / outer.sum()))


def is_thin(region: np.ndarray) -> bool:
    """Whether no pixel of ``region`` has all eight neighbours in it (a strip under 3 px wide)."""
    return not cv2.erode(region.astype(np.uint8), np.ones((3, 3), np.uint8)).any()


def uncovered_colour(image: np.ndarray, label: int, covered: np.ndarray,
                     dropped_allowed: bool) -> np.ndarray:
    """bool ``[H, W]``: pixels of class ``label``'s colour outside ``covered``; with
    ``dropped_allowed``, less the groups that touch the border or the fill (the visible rest of
    an object cut so much that its box was dropped)."""
    uncovered = colour_pixels(image, label) & ~covered
    if dropped_allowed and uncovered.any():
        fill = fill_pixels(image)
        count, groups = cv2.connectedComponents(uncovered.astype(np.uint8), connectivity=8)
        for group in range(1, count):
            if reaches_cut(groups == group, fill):
                uncovered &= groups != group
    return uncovered


def mask_problems(image: np.ndarray, masks: np.ndarray, boxes: np.ndarray, labels: np.ndarray,
                  dropped_allowed: bool = False) -> list[str]:
    """What is wrong with ``masks`` (``[N, H, W]``), ``boxes`` and ``labels`` of an augmented
    painted image whose objects do not touch.

    Per mask, its object's pixels are the connected groups of its class colour that it overlaps
    (none: the mask missed its object). Then:
    (a) IoU(mask, object pixels) >= ``ring_iou_bound(mask, MASK_RING)``, the worst case of edges
        that disagree by MASK_RING px (no further slack);
    (b) the object's pixels lie in the box grown by MASK_RING, and each box side lies within
        MASK_RING + 1 px of the object's extent (the box is the mask's box, the extent is the
        colour's);
    (c) every pixel of a class colour lies in some mask of that class grown by MASK_RING
        (``dropped_allowed``: as in :func:`box_problems`). The dataset drops an object whose mask
        came out empty, so a thin strip of colour at a cut may go without a mask.
    The extent test of (b) is for whole objects: a cut piece may end in a strip thinner than a
    pixel whose mask pixels (nearest neighbour) hold no pure colour.
    A mask must also be non-empty and inside its box. Masks with no pixel deeper than one pixel
    inside them (cut slivers, or pieces under MIN_MASK_AREA px) skip (a) and (b): blending may
    leave none of their pixels pure enough to count, and a ring bound means nothing for them.
    """
    problems = []
    shape = image.shape[:2]
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    labels = np.asarray(labels).reshape(-1)
    masks = masks.astype(bool)
    fill_grey = fill_pixels(image)
    for j, (mask, box, label) in enumerate(zip(masks, boxes, labels)):
        name = f"mask {j} ({CLASS_NAMES[label]}, box {np.round(box, 1).tolist()})"
        if not mask.any():
            problems.append(f"{name} is empty")
            continue
        if (mask & ~box_region(box, shape, EDGE)).any():
            problems.append(f"{name} reaches outside its box")
        if is_thin(mask) or mask.sum() < MIN_MASK_AREA:
            continue
        colour = colour_pixels(image, int(label))
        _, groups = cv2.connectedComponents(colour.astype(np.uint8), connectivity=8)
        target = np.isin(groups, np.setdiff1d(np.unique(groups[mask & colour]), [0]))
        iou = (mask & target).sum() / (mask | target).sum()
        bound = ring_iou_bound(mask, MASK_RING)
        if iou < bound:
            problems.append(f"{name}: IoU {iou:.2f} with its object's pixels (need {bound:.2f})")
            continue
        if (target & ~box_region(box, shape, MASK_RING)).any():
            problems.append(f"{name}: its object's pixels reach outside the box")
        ys, xs = np.nonzero(target)
        extent = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        if not is_cut(box, fill_grey) and np.abs(extent - box).max() > MASK_RING + 1:
            problems.append(f"{name}: the box is off its object's extent {extent.tolist()}")
    kernel = np.ones((2 * MASK_RING + 1, 2 * MASK_RING + 1), np.uint8)
    for label in range(len(PALETTE)):
        covered = masks[labels == label].any(axis=0) if (labels == label).any() else np.zeros(shape, bool)
        covered = cv2.dilate(covered.astype(np.uint8), kernel).astype(bool)
        uncovered = uncovered_colour(image, label, covered, dropped_allowed)
        if uncovered.any():  # a cut sliver whose nearest-neighbour mask came out empty is dropped
            count, groups = cv2.connectedComponents(uncovered.astype(np.uint8), connectivity=8)
            for group in range(1, count):
                piece = groups == group
                if is_thin(piece) and reaches_cut(piece, fill_grey):
                    uncovered &= ~piece
        if uncovered.any():
            ys, xs = np.nonzero(uncovered)
            problems.append(f"{uncovered.sum()} {CLASS_NAMES[label]} pixels lie outside every "
                            f"{CLASS_NAMES[label]} mask (e.g. x={xs[0]}, y={ys[0]})")
    return problems
