"""Per-file label problems in YOLO, VOC and COCO: reported, stop ``strict``, skipped by ``fix``.

A broken label skips the whole image: a partly labelled image would teach the model that its
unlabelled objects are background.
"""

from __future__ import annotations

import json

import numpy as np

from yolotl.data import check_dataset

from .health_helpers import BOX, check_case, train_names
from .helpers import voc_xml, write_image

# ---- YOLO -------------------------------------------------------------------------------


def _yolo(make_yolo, label, **extra):
    return make_yolo({"train": {"good.jpg": BOX, "a.jpg": label, **extra}, "val": {"v.jpg": BOX}})


def test_malformed_yolo_line_skips_the_image(make_yolo, tmp_path) -> None:
    root = _yolo(make_yolo, BOX + "\n0 0.5 0.5 0.1\n")
    dm = check_case(root, "yolo", "malformed_label", "a.txt", tmp_path / "run")
    assert train_names(dm) == ["good.jpg"]


def test_class_id_out_of_range_skips_the_image(make_yolo, tmp_path) -> None:
    root = _yolo(make_yolo, "7 0.5 0.5 0.1 0.1\n")
    dm = check_case(root, "yolo", "unknown_class", "a.txt", tmp_path / "run")
    assert train_names(dm) == ["good.jpg"]
    assert "class id 7 is out of range" in dm.health.of_kind("unknown_class")[0].detail


def test_label_file_that_is_not_text_skips_the_image(make_yolo, tmp_path) -> None:
    root = _yolo(make_yolo, BOX)
    (root / "train" / "labels" / "a.txt").write_bytes(b"\xff\xfe\x00\x81binary")
    dm = check_case(root, "yolo", "malformed_label", "a.txt", tmp_path / "run")
    assert train_names(dm) == ["good.jpg"]


def test_image_without_label_file_is_kept_as_background(make_yolo, tmp_path) -> None:
    root = _yolo(make_yolo, None)
    dm = check_case(root, "yolo", "missing_label_file", "a.jpg", tmp_path / "run")
    assert train_names(dm) == ["a.jpg", "good.jpg"] and dm.split("train").records[0].num_objects == 0


def test_label_file_without_image_is_reported_and_ignored(make_yolo, tmp_path) -> None:
    root = _yolo(make_yolo, BOX)
    (root / "train" / "labels" / "gone.txt").write_text(BOX)
    (root / "train" / "labels" / "classes.txt").write_text("a\nb\nc\n")  # LabelImg: not an orphan
    dm = check_case(root, "yolo", "orphan_label_file", "gone.txt", tmp_path / "run")
    assert train_names(dm) == ["a.jpg", "good.jpg"]


def test_empty_label_file_is_information_only(make_yolo, tmp_path) -> None:
    root = _yolo(make_yolo, "")
    dm = check_case(root, "yolo", "background_image", "a.txt", tmp_path / "run")
    assert train_names(dm) == ["a.jpg", "good.jpg"]


def test_listed_image_that_is_missing_is_skipped(make_yolo, tmp_path) -> None:
    root = _yolo(make_yolo, BOX)
    (root / "train.txt").write_text("train/images/good.jpg\ntrain/images/a.jpg\ntrain/images/gone.jpg\n")
    (root / "data.yaml").write_text("train: train.txt\nval: val/images\nnames: [a, b, c]\n")
    dm = check_case(root, "yolo", "skipped_missing_image", "train.txt", tmp_path / "run")
    assert train_names(dm) == ["good.jpg", "a.jpg"]
    assert "gone.jpg" in dm.health.of_kind("skipped_missing_image")[0].detail


# ---- VOC --------------------------------------------------------------------------------

CAT = [("cat", (10, 10, 50, 50), 0)]


def _voc(make_voc, xml: str):
    return make_voc({"train": {"good": voc_xml("good.jpg", CAT), "q": xml},
                     "val": {"v": voc_xml("v.jpg", CAT)}})


def test_unknown_voc_class_skips_the_image(make_voc, tmp_path) -> None:
    root = _voc(make_voc, voc_xml("q.jpg", CAT + [("zebra", (5, 5, 30, 30), 0)]))
    dm = check_case(root, "voc", "unknown_class", "q.xml", tmp_path / "run", class_names=["cat"])
    assert train_names(dm) == ["good.jpg"]


def test_a_skipped_image_reports_only_its_skip(make_voc) -> None:
    root = _voc(make_voc, voc_xml("q.jpg", [("cat", (5, 5, 30, 30), 1), ("zebra", (5, 5, 30, 30), 0)]))
    report = check_dataset(root, "voc", class_names=["cat"])
    assert [f.kind for f in report.findings if "q.xml" in f.file] == ["unknown_class"]  # no difficult_object


def test_unparseable_xml_skips_the_image(make_voc, tmp_path) -> None:
    root = _voc(make_voc, "<annotation><object>")
    dm = check_case(root, "voc", "unparseable_annotation", "q.xml", tmp_path / "run")
    assert train_names(dm) == ["good.jpg"] and dm.class_names == ["cat"]


def test_xml_without_bndbox_skips_the_image(make_voc, tmp_path) -> None:
    root = _voc(make_voc, "<annotation><object><name>cat</name></object></annotation>")
    dm = check_case(root, "voc", "malformed_label", "q.xml", tmp_path / "run")
    assert train_names(dm) == ["good.jpg"]


def test_listed_id_without_xml_skips_it(make_voc, tmp_path) -> None:
    root = _voc(make_voc, voc_xml("q.jpg", CAT))
    (root / "Annotations" / "q.xml").unlink()
    dm = check_case(root, "voc", "missing_annotation", "q.xml", tmp_path / "run")
    assert train_names(dm) == ["good.jpg"]


def test_xml_whose_image_is_missing_is_skipped(make_voc, tmp_path) -> None:
    root = _voc(make_voc, voc_xml("q.jpg", CAT))
    (root / "JPEGImages" / "q.jpg").unlink()
    dm = check_case(root, "voc", "skipped_missing_image", "q.jpg", tmp_path / "run")
    assert train_names(dm) == ["good.jpg"]


def test_image_no_xml_refers_to_is_reported_for_the_dataset(make_voc, tmp_path) -> None:
    root = _voc(make_voc, voc_xml("q.jpg", CAT))
    write_image(root / "JPEGImages" / "stray.jpg", 100, 80, seed=99)
    dm = check_case(root, "voc", "unlisted_image", "stray.jpg", tmp_path / "run")
    assert dm.health.of_kind("unlisted_image")[0].split == "dataset"
    assert "dataset" in dm.health.table().splitlines()[3]  # its own column


def test_difficult_object_is_information(make_voc, tmp_path) -> None:
    root = _voc(make_voc, voc_xml("q.jpg", [("cat", (10, 10, 50, 50), 1)]))
    dm = check_case(root, "voc", "difficult_object", "q.xml", tmp_path / "run")
    assert dm.split("train").num_boxes == 2


def test_stale_voc_size_is_reported_and_boxes_rescaled(make_voc, tmp_path) -> None:
    root = _voc(make_voc, voc_xml("q.jpg", CAT, size=(200, 160)))
    check_case(root, "voc", "size_mismatch", "q.xml", tmp_path / "run")


# ---- COCO -------------------------------------------------------------------------------


def _coco(make_coco, annotations: list[dict], names=None, images: int = 2, **kwargs):
    names = names or {1: "cat", 2: "dog"}
    data = {"images": [{"id": i, "file_name": f"im{i}.png", "width": 100, "height": 80}
                       for i in range(images)],
            "categories": [{"id": k, "name": v} for k, v in names.items()],
            "annotations": annotations}
    make_coco("val", {**data, "images": data["images"][:1], "annotations": [
        {"id": 99, "image_id": 0, "category_id": min(names), "bbox": [5, 5, 20, 20]}]})
    return make_coco("train", data, **kwargs)


def _ann(i: int, image: int, cat: int = 1, bbox=(10, 10, 20, 20), crowd: int = 0) -> dict:
    return {"id": i, "image_id": image, "category_id": cat, "bbox": list(bbox), "iscrowd": crowd}


def test_coco_listed_image_missing_on_disk(make_coco, tmp_path) -> None:
    root = _coco(make_coco, [_ann(1, 0), _ann(2, 1)], skip=("im1.png",))
    dm = check_case(root, "coco", "skipped_missing_image", "instances_train.json", tmp_path / "run")
    assert train_names(dm) == ["im0.png"]


def test_coco_file_in_the_folder_not_listed(make_coco, tmp_path) -> None:
    root = _coco(make_coco, [_ann(1, 0), _ann(2, 1)])
    write_image(root / "train" / "extra.png", 100, 80, seed=7)
    dm = check_case(root, "coco", "unlisted_image", "extra.png", tmp_path / "run")
    assert train_names(dm) == ["im0.png", "im1.png"]


def test_coco_bad_bbox_and_unknown_category_skip_their_image(make_coco, tmp_path) -> None:
    root = _coco(make_coco, [_ann(1, 0), _ann(2, 1, bbox=(1, 2, 3)), _ann(3, 2, cat=5)], images=3)
    dm = check_case(root, "coco", "malformed_label", "instances_train.json", tmp_path / "run",
                    count=1)
    assert train_names(dm) == ["im0.png"] and dm.health.totals()["unknown_class"] == 1


def test_coco_crowd_annotation_is_information(make_coco, tmp_path) -> None:
    root = _coco(make_coco, [_ann(1, 0), _ann(2, 1), _ann(3, 1, crowd=1)])
    dm = check_case(root, "coco", "skipped_crowd_annotation", "instances_train.json", tmp_path / "run")
    # kept (same box as object 2, yet no duplicate: a region is not a second copy of an object)
    assert dm.split("train").num_boxes == 3
    assert [r.crowd.tolist() for r in dm.split("train").records] == [[False], [False, True]]


def test_coco_category_id_gap_is_reported_and_mapped(make_coco, tmp_path) -> None:
    root = _coco(make_coco, [_ann(1, 0, cat=1), _ann(2, 1, cat=5)], names={1: "cat", 2: "dog", 5: "eel"})
    # both split JSONs list the same categories: one finding each
    dm = check_case(root, "coco", "category_id_gap", "annotations/instances_", tmp_path / "run", count=2)
    assert "[1, 2, 5]" in dm.health.of_kind("category_id_gap")[0].detail
    assert dm.class_names == ["cat", "dog", "eel"]
    assert np.concatenate([r.labels for r in dm.split("train").records]).tolist() == [0, 2]


def test_coco_annotation_of_unknown_image_is_ignored(make_coco, tmp_path) -> None:
    root = _coco(make_coco, [_ann(1, 0), _ann(2, 1), _ann(3, 42)])
    check_case(root, "coco", "skipped_orphan_annotation", "instances_train.json", tmp_path / "run")
    assert json.loads((root / "annotations" / "instances_train.json").read_text())  # untouched


def test_stale_size_rescale_warns_once_per_image(caplog) -> None:
    from pathlib import Path

    from yolotl.data import ImageRecord
    from yolotl.data.dataset import boxes_in_decoded_frame

    record = ImageRecord(Path("stale-size-once.jpg"), np.array([[10, 10, 50, 40]], np.float32),
                         np.array([0]), 100, 80)
    warned: set[Path] = set()  # a dataset keeps one: no process-wide state
    with caplog.at_level("WARNING", logger="yolotl.data"):
        for _ in range(3):  # three epochs
            boxes = boxes_in_decoded_frame(record, 160, 200, warned)
    np.testing.assert_allclose(boxes, [[20, 20, 100, 80]])
    assert sum("rescaling its boxes" in r.getMessage() for r in caplog.records) == 1
