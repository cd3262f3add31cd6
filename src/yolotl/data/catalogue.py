"""The catalogue of data findings: for every kind, its severity, what ``policy="fix"`` does, and how
it reads in a summary.

One table, used by the readers' :class:`~yolotl.data.findings.FindingLog`, the health report and
the training-time policy, so a kind means the same thing everywhere:

- severity ``error``: the image cannot be used as given (it would crash or teach the wrong thing);
  ``warning``: wrong or suspicious but repairable, or kept and worth a look; ``info``: legal, worth
  knowing. ``policy="strict"`` stops on any error or warning; info never stops training.
- action (what ``fix`` does): ``fixed`` (changed in memory, never on disk), ``dropped box``,
  ``skipped image``, ``kept`` (reported only) or ``ignored`` (a file that is not part of the
  dataset, such as a label file without an image, stays out).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ACTIONS", "KINDS", "SEVERITIES", "FindingKind", "kind_info"]

SEVERITIES = ("error", "warning", "info")
ACTIONS = ("skipped image", "dropped box", "fixed", "kept", "ignored")


@dataclass(frozen=True)
class FindingKind:
    """One kind of finding: severity, fix action, and a summary phrase (verb, singular, plural)."""

    name: str
    severity: str
    action: str
    verb: str
    one: str
    many: str


_ALL = [
    # --- images that cannot be used: the image is skipped -----------------------------------
    FindingKind("unreadable_image", "error", "skipped image", "skipped", "unreadable image",
          "unreadable images"),
    FindingKind("truncated_image", "error", "skipped image", "skipped", "truncated image",
          "truncated images"),
    FindingKind("empty_image_file", "error", "skipped image", "skipped", "zero-byte image file",
          "zero-byte image files"),
    FindingKind("skipped_missing_image", "error", "skipped image", "skipped",
          "listed image that is missing on disk", "listed images that are missing on disk"),
    FindingKind("missing_annotation", "error", "skipped image", "skipped",
          "image whose annotation file is missing", "images whose annotation files are missing"),
    FindingKind("unparseable_annotation", "error", "skipped image", "skipped",
          "image whose annotation file cannot be parsed",
          "images whose annotation files cannot be parsed"),
    FindingKind("malformed_label", "error", "skipped image", "skipped",
          "image with a malformed label", "images with malformed labels"),
    FindingKind("unknown_class", "error", "skipped image", "skipped",
          "image with a class outside the class list", "images with classes outside the class list"),
    FindingKind("leaked_image", "error", "skipped image", "skipped",
          "image identical to one in a later split (leakage)",
          "images identical to ones in a later split (leakage)"),
    FindingKind("duplicate_image", "warning", "skipped image", "skipped",
          "second copy of an image in the same split", "extra copies of images in the same split"),
    # --- boxes ---------------------------------------------------------------------------------
    FindingKind("dropped_degenerate_box", "warning", "dropped box", "dropped",
          "degenerate (zero-area or < 1 px) box", "degenerate (zero-area or < 1 px) boxes"),
    FindingKind("negative_size_box", "warning", "dropped box", "dropped",
          "box with a negative width or height (COCO bbox w/h < 0)",
          "boxes with a negative width or height (COCO bbox w/h < 0)"),
    FindingKind("dropped_non_finite_box", "warning", "dropped box", "dropped",
          "box with non-finite coordinates", "boxes with non-finite coordinates"),
    FindingKind("dropped_outside_box", "warning", "dropped box", "dropped",
          "box wholly outside the image", "boxes wholly outside the image"),
    FindingKind("clipped_box", "warning", "fixed", "clipped", "box to the image border",
          "boxes to the image border"),
    FindingKind("tiny_box", "warning", "dropped box", "dropped", "tiny box (a side under tiny_box_px)",
          "tiny boxes (a side under tiny_box_px)"),
    FindingKind("duplicate_box", "warning", "dropped box", "dropped", "exact duplicate box",
          "exact duplicate boxes"),
    FindingKind("near_duplicate_box", "warning", "kept", "kept", "near-duplicate box pair",
          "near-duplicate box pairs"),
    FindingKind("box_area_outlier", "info", "kept", "kept", "box with an outlier area for its class",
          "boxes with outlier areas for their class"),
    FindingKind("difficult_object", "info", "kept", "kept",
          "object marked difficult (trained on, ignored by evaluation)",
          "objects marked difficult (trained on, ignored by evaluation)"),
    FindingKind("polygon_to_box", "info", "fixed", "converted", "polygon label to its bounding box",
          "polygon labels to their bounding boxes"),
    # the name predates keeping them; kept stable for data_health.json readers
    FindingKind("skipped_crowd_annotation", "info", "kept", "kept",
          "crowd (iscrowd=1) annotation as a region evaluation ignores (not a training target)",
          "crowd (iscrowd=1) annotations as regions evaluation ignores (not training targets)"),
    # --- instance segments (polygons, RLE) ---------------------------------------------------
    FindingKind("odd_polygon_coordinates", "error", "skipped image", "skipped",
          "image with a polygon of an odd number of coordinates",
          "images with polygons of an odd number of coordinates"),
    FindingKind("rle_size_mismatch", "error", "skipped image", "skipped",
          "image with an RLE mask whose size differs from the image",
          "images with RLE masks whose sizes differ from the image"),
    FindingKind("polygon_too_few_points", "warning", "dropped box", "dropped",
          "object with a polygon of under 3 points", "objects with polygons of under 3 points"),
    FindingKind("zero_area_segment", "warning", "dropped box", "dropped",
          "object whose polygon or RLE has zero area", "objects whose polygons or RLEs have zero area"),
    FindingKind("polygon_outside_image", "warning", "dropped box", "dropped",
          "object whose polygons lie wholly outside the image",
          "objects whose polygons lie wholly outside the image"),
    FindingKind("clipped_polygon", "warning", "fixed", "clipped",
          "polygon reaching outside the image (to the image, when rasterised)",
          "polygons reaching outside the image (to the image, when rasterised)"),
    FindingKind("self_intersecting_polygon", "warning", "kept", "kept",
          "self-intersecting polygon (filled as drawn)", "self-intersecting polygons (filled as drawn)"),
    FindingKind("box_mask_mismatch", "warning", "fixed", "replaced",
          "box that disagrees with its mask by its mask's box",
          "boxes that disagree with their masks by their masks' boxes"),
    FindingKind("missing_segment", "warning", "kept", "kept",
          "object without a segment in segmentation data (its box is its mask)",
          "objects without a segment in segmentation data (their boxes are their masks)"),
    # --- semantic class maps (a PNG of class indices per image) ---------------------------------
    FindingKind("unreadable_mask", "error", "skipped image", "skipped",
          "image whose class map is missing, does not decode or is no index image",
          "images whose class maps are missing, do not decode or are no index images"),
    FindingKind("mask_size_mismatch", "error", "skipped image", "skipped",
          "image whose class map size differs from the image (never resized)",
          "images whose class map sizes differ from the image (never resized)"),
    FindingKind("unknown_mask_value", "error", "skipped image", "skipped",
          "image whose class map holds values of no class (not 255 either)",
          "images whose class maps hold values of no class (not 255 either)"),
    FindingKind("ignore_only_mask", "warning", "skipped image", "skipped",
          "image whose class map is all ignore (255): it teaches nothing",
          "images whose class maps are all ignore (255): they teach nothing"),
    FindingKind("background_only_mask", "info", "kept", "kept",
          "image whose class map is all background (a true negative?)",
          "images whose class maps are all background (true negatives?)"),
    # --- image content and format --------------------------------------------------------------
    FindingKind("grayscale_image", "info", "fixed", "converted", "grayscale image to RGB",
          "grayscale images to RGB"),
    FindingKind("alpha_image", "info", "fixed", "converted", "image with alpha to RGB",
          "images with alpha to RGB"),
    FindingKind("palette_image", "info", "fixed", "converted", "palette image to RGB",
          "palette images to RGB"),
    FindingKind("high_bit_depth_image", "info", "fixed", "converted", "16-bit or float image to 8-bit RGB",
          "16-bit or float images to 8-bit RGB"),
    FindingKind("other_mode_image", "info", "fixed", "converted", "CMYK or other-mode image to RGB",
          "CMYK or other-mode images to RGB"),
    FindingKind("exif_rotated_image", "info", "fixed", "rotated", "image by its EXIF orientation",
          "images by their EXIF orientation"),
    FindingKind("size_mismatch", "warning", "fixed", "rescaled",
          "image's boxes (annotated size differs from the image)",
          "images' boxes (annotated size differs from the image)"),
    FindingKind("background_image", "info", "kept", "kept", "image without objects as background",
          "images without objects as background"),
    FindingKind("missing_label_file", "warning", "kept", "kept",
          "image without a label file as background", "images without a label file as background"),
    # --- classes across splits ----------------------------------------------------------------
    FindingKind("class_missing_in_train", "warning", "kept", "kept",
          "class with boxes here but none in train", "classes with boxes here but none in train"),
    FindingKind("rare_class", "warning", "kept", "kept", "class with under 5 training boxes",
          "classes with under 5 training boxes"),
    FindingKind("class_absent_from_split", "info", "kept", "kept",
          "class with no pixel in this split (present elsewhere, or nowhere)",
          "classes with no pixel in this split (present elsewhere, or nowhere)"),
    FindingKind("sequence_leakage", "warning", "kept", "kept",
          "video sequence whose frames interleave with an earlier split's (optimistic scores)",
          "video sequences whose frames interleave with an earlier split's (one per earlier split; "
          "optimistic scores)"),
    # --- files and layout ----------------------------------------------------------------------
    FindingKind("orphan_label_file", "warning", "ignored", "ignored", "label file without an image",
          "label files without an image"),
    FindingKind("unlisted_image", "warning", "ignored", "ignored", "image no annotation refers to",
          "images no annotation refers to"),
    FindingKind("skipped_orphan_annotation", "warning", "ignored", "skipped",
          "annotation of an unknown image", "annotations of unknown images"),
    FindingKind("resolved_path", "warning", "fixed", "resolved", "split path that did not exist as written",
          "split paths that did not exist as written"),
    FindingKind("dropped_parent_category", "info", "fixed", "dropped", "unused parent category",
          "unused parent categories"),
    FindingKind("category_id_gap", "info", "kept", "mapped", "gap in the category ids to contiguous labels",
          "gaps in the category ids to contiguous labels"),
]

KINDS: dict[str, FindingKind] = {kind.name: kind for kind in _ALL}


def kind_info(name: str) -> FindingKind:
    """The catalogue entry of ``name``; an unknown kind reads as a kept warning (never hidden)."""
    known = KINDS.get(name)
    if known is not None:
        return known
    text = name.replace("_", " ")
    return FindingKind(name, "warning", "kept", text + ":", "entry", "entries")
