"""COCO reader: category gaps, crowd annotations, layouts, skips and errors."""

from __future__ import annotations

import re

import numpy as np
import pytest

from yolotl.data import read_coco_split
from yolotl.errors import DatasetError


def _coco(annotations: list[dict], names: dict[int, str] | None = None,
          images: int = 2) -> dict:
    names = names or {1: "cat", 3: "dog", 7: "bird"}
    return {
        "images": [{"id": i + 10, "file_name": f"im{i}.png", "width": 100, "height": 80}
                   for i in range(images)],
        "categories": [{"id": k, "name": v, "supercategory": "animal"} for k, v in names.items()],
        "annotations": annotations,
    }


def _ann(i: int, image_id: int, cat: int, bbox: list[float], crowd: int = 0) -> dict:
    return {"id": i, "image_id": image_id, "category_id": cat, "bbox": bbox, "iscrowd": crowd}


def test_category_gaps_map_to_contiguous_labels(make_coco) -> None:
    anns = [_ann(1, 10, 7, [10, 20, 30, 40]), _ann(2, 10, 1, [0, 0, 5, 5]),
            _ann(3, 10, 3, [50, 50, 10, 10])]
    root = make_coco("train", _coco(anns))
    split = read_coco_split(root, "train")
    assert split.class_names == ["cat", "dog", "bird"]
    record = split.records[0]
    assert record.labels.tolist() == [2, 0, 1]
    np.testing.assert_array_equal(record.boxes, [[10, 20, 40, 60], [0, 0, 5, 5], [50, 50, 60, 60]])
    assert record.image_path == root / "train" / "im0.png"
    # im1 has no annotations; ids 1, 3, 7 have gaps (reported as information)
    assert split.findings.counts() == {"category_id_gap": 1, "background_image": 1}
    reordered = read_coco_split(root, "train", class_names=["bird", "cat", "dog"])
    assert reordered.records[0].labels.tolist() == [0, 1, 2]


def test_crowd_orphan_and_degenerate_are_logged(make_coco) -> None:
    anns = [_ann(1, 10, 1, [10, 10, 20, 20], crowd=1), _ann(2, 99, 1, [1, 1, 5, 5]),
            _ann(3, 10, 3, [10, 10, 0, 0]), _ann(4, 10, 3, [90, 70, 20, 20])]
    split = read_coco_split(make_coco("val", _coco(anns, images=1)), "val")
    assert split.findings.counts() == {"category_id_gap": 1, "skipped_orphan_annotation": 1,
                                      "skipped_crowd_annotation": 1,
                                      "dropped_degenerate_box": 1, "clipped_box": 1}
    record = split.records[0]
    np.testing.assert_array_equal(record.boxes, [[10, 10, 30, 30], [90, 70, 100, 80]])
    # the crowd region is kept, flagged: evaluation ignores it, training leaves it out
    assert record.crowd.tolist() == [True, False] and record.ignored.tolist() == [True, False]
    assert record.difficult.tolist() == [False, False]
    [crowd] = [f for f in split.findings if f.kind == "skipped_crowd_annotation"]
    assert "kept as a region evaluation ignores" in crowd.detail and crowd.action == "kept"
    np.testing.assert_array_equal(record.for_training().boxes, [[90, 70, 100, 80]])


def test_roboflow_layout_drops_unused_parent_category(make_coco) -> None:
    data = _coco([_ann(1, 10, 1, [10, 10, 20, 20])], images=1)
    data["categories"] = [{"id": 0, "name": "animals", "supercategory": "none"},
                          {"id": 1, "name": "cat", "supercategory": "animals"},
                          {"id": 2, "name": "dog", "supercategory": "animals"}]
    split = read_coco_split(make_coco("valid", data, layout="roboflow"), "val")
    assert split.class_names == ["cat", "dog"]
    assert split.records[0].labels.tolist() == [0]
    assert split.findings.counts() == {"dropped_parent_category": 1}


def test_missing_images_are_skipped_unless_all_missing(make_coco, tmp_path) -> None:
    root = make_coco("train", _coco([], images=3), skip=("im1.png",))
    split = read_coco_split(root, "train")
    assert len(split) == 2 and split.findings.counts()["skipped_missing_image"] == 1
    root = make_coco("train", _coco([], images=2), skip=("im0.png", "im1.png"))
    for png in (root / "train").glob("*.png"):
        png.unlink()
    with pytest.raises(DatasetError, match=r"instances_train\.json.*im0\.png.*tried"):
        read_coco_split(root, "train")


def test_bad_annotations_skip_their_image(make_coco) -> None:
    anns = [_ann(1, 10, 5, [1, 1, 5, 5]), _ann(2, 10, 1, [1, 1, 5, 5]),
            _ann(3, 11, 1, [1, 1, "x", 5]), _ann(4, 12, 1, [10, 10, 5, 5])]
    split = read_coco_split(make_coco("train", _coco(anns, images=3)), "train")
    assert [r.image_path.name for r in split.records] == ["im2.png"]
    rows = [row for row in split.findings.to_rows() if row["kind"] != "category_id_gap"]
    assert [row["kind"] for row in rows] == ["unknown_class", "malformed_label"]
    assert re.search(r"instances_train\.json.*annotation 1 \(im0\.png\).*category_id 5", rows[0]["detail"])
    assert "im1.png" in rows[1]["detail"] and "[x, y, w, h]" in rows[1]["detail"]


def test_errors_name_the_file(make_coco, tmp_path) -> None:
    root = make_coco("train", _coco([_ann(1, 10, 5, [1, 1, 5, 5])], images=1))
    with pytest.raises(DatasetError, match=r"zero images.*instances_train\.json.*category_id 5"):
        read_coco_split(root, "train", class_names=["cat", "dog", "bird"])
    with pytest.raises(DatasetError, match=r"\['cat', 'dog'\] are not in class_names \['bird'\]"):
        read_coco_split(root, "train", class_names=["bird"])  # cat, dog unknown
    with pytest.raises(DatasetError, match=r"'test' not found.*\['train'\]"):
        read_coco_split(root, "test")
    (root / "annotations" / "instances_train.json").write_text("{not json")
    with pytest.raises(DatasetError, match=r"Cannot parse .*instances_train\.json"):
        read_coco_split(root, "train")
    with pytest.raises(DatasetError, match=r"data\.root="):
        read_coco_split(tmp_path / "absent", "train")


def test_zero_images_is_an_error(make_coco) -> None:
    with pytest.raises(DatasetError, match="zero images"):
        read_coco_split(make_coco("train", _coco([], images=0)), "train")


def test_negative_width_or_height_is_its_own_finding_and_the_box_is_dropped(make_coco) -> None:
    anns = [_ann(1, 10, 1, [10, 10, 20, 20]), _ann(2, 10, 1, [30, 10, -5, 20]),
            _ann(3, 10, 2, [2, 10, -10, 20]), _ann(4, 10, 2, [40, 50, 10, -30])]
    split = read_coco_split(make_coco("train", _coco(anns, names={1: "cat", 2: "dog"}, images=1)), "train")
    assert split.findings.counts() == {"negative_size_box": 3}
    np.testing.assert_array_equal(split.records[0].boxes, [[10, 10, 30, 30]])
    texts = [row["detail"] for row in split.findings.to_rows()]
    assert any("annotation 2" in t and "negative width" in t and "[30, 10, -5, 20]" in t for t in texts)
    assert any("annotation 4" in t and "negative height" in t for t in texts)
    rows = split.findings.to_rows()
    assert {(row["severity"], row["action"]) for row in rows} == {("warning", "dropped box")}
