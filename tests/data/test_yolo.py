"""YOLO reader: layouts, the box rule, per-image skips and the hard (dataset-level) errors."""

from __future__ import annotations

import re

import numpy as np
import pytest

from yolotl.data import read_split, read_yolo_split
from yolotl.errors import ConfigError, DatasetError

BOX = "1 0.5 0.5 0.2 0.5"  # on a 100x80 image: [40, 20, 60, 60]


def test_happy_path_converts_to_absolute_xyxy(make_yolo) -> None:
    root = make_yolo({"train": {"a.jpg": BOX + "\n0 0.1 0.1 0.2 0.2\n", "b.png": BOX},
                      "val": {"c.jpg": BOX}})
    split = read_yolo_split(root, "train")
    assert split.class_names == ["a", "b", "c"] and split.name == "train"
    assert len(split) == 2 and not split.findings
    record = split.records[0]
    assert record.image_path.name == "a.jpg" and (record.width, record.height) == (100, 80)
    assert record.boxes.dtype == np.float32 and record.labels.dtype == np.int64
    np.testing.assert_allclose(record.boxes, [[40, 20, 60, 60], [0, 0, 20, 16]], atol=1e-4)
    assert record.labels.tolist() == [1, 0]


def test_names_as_dict_and_class_names_reorder(make_yolo) -> None:
    root = make_yolo({"train": {"a.jpg": BOX}},
                     {"train": "train/images", "names": {0: "cat", 1: "dog"}})
    assert read_yolo_split(root, "train").class_names == ["cat", "dog"]
    split = read_yolo_split(root, "train", class_names=["dog", "cat"])
    assert split.class_names == ["dog", "cat"] and split.records[0].labels.tolist() == [0]


def test_class_names_mismatch_is_an_error(make_yolo) -> None:
    root = make_yolo({"train": {"a.jpg": BOX}})
    with pytest.raises(DatasetError, match="data.yaml") as info:
        read_yolo_split(root, "train", class_names=["a", "b", "zebra"])
    assert "zebra" in str(info.value)


def test_roboflow_relative_paths_and_test_without_key(make_yolo) -> None:
    splits = {"train": {"a.jpg": BOX}, "valid": {"b.jpg": BOX}, "test": {"c.jpg": BOX}}
    root = make_yolo(splits, {"train": "../train/images", "val": "../valid/images",
                              "nc": 3, "names": ["a", "b", "c"]})
    for name, expected in (("train", "a.jpg"), ("val", "b.jpg"), ("valid", "b.jpg"),
                           ("test", "c.jpg")):
        split = read_yolo_split(root, name)
        assert [r.image_path.name for r in split.records] == [expected]
        assert split.findings.counts() == {"resolved_path": 1}


def test_path_key_and_images_split_layout(make_yolo, tmp_path) -> None:
    root = make_yolo({"train": {"a.jpg": BOX}})
    data = tmp_path / "elsewhere"
    (root / "train").rename(data)  # data/images/*.jpg, data/labels/*.txt
    config = f"path: {data.parent}\ntrain: elsewhere/images\nnames: [a, b, c]\n"
    (root / "data.yaml").write_text(config)
    assert len(read_yolo_split(root, "train")) == 1


def test_split_given_as_list_file(make_yolo) -> None:
    root = make_yolo({"train": {"a.jpg": BOX, "b.jpg": BOX}})
    (root / "train.txt").write_text("./train/images/b.jpg\n")
    (root / "data.yaml").write_text("train: train.txt\nnames: [a, b, c]\n")
    assert [r.image_path.name for r in read_yolo_split(root, "train").records] == ["b.jpg"]
    (root / "train.txt").write_text("train/images/b.jpg\ntrain/images/gone.jpg\n")
    split = read_yolo_split(root, "train")  # a listed image that is missing is skipped and logged
    assert [r.image_path.name for r in split.records] == ["b.jpg"]
    [row] = split.findings.to_rows()
    assert row["kind"] == "skipped_missing_image" and re.search(r"train\.txt:2.*gone\.jpg", row["detail"])


def test_box_rule_drops_clips_and_keeps_background(make_yolo) -> None:
    labels = "\n".join([
        "0 0.5 0.5 0 0",            # line 1: zero size -> dropped
        "1 0.5 0.5 0.01 0.0125",    # line 2: exactly 1x1 px -> kept
        "2 0.95 0.5 0.2 0.2",       # line 3: crosses the right border -> clipped
        "0 nan 0.5 0.1 0.1",        # line 4: non-finite -> dropped
    ])
    root = make_yolo({"train": {"a.jpg": labels, "empty.jpg": "", "nolabel.jpg": None}})
    split = read_yolo_split(root, "train")
    counts = split.findings.counts()
    assert counts == {"dropped_degenerate_box": 1, "clipped_box": 1,
                      "dropped_non_finite_box": 1, "background_image": 1,
                      "missing_label_file": 1}
    record = split.records[0]
    assert record.labels.tolist() == [1, 2]
    np.testing.assert_allclose(record.boxes[1], [85, 32, 100, 48], atol=1e-4)
    rows = {row["kind"]: row for row in split.findings.to_rows()}
    assert rows["dropped_degenerate_box"]["file"].endswith("a.txt")
    assert "line 1" in rows["dropped_degenerate_box"]["detail"]
    assert [len(r.labels) for r in split.records[1:]] == [0, 0]
    assert "empty.txt" in split.findings.summary()


def test_polygon_line_becomes_its_bounding_box(make_yolo) -> None:
    root = make_yolo({"train": {"a.jpg": "2 0.1 0.1 0.5 0.1 0.3 0.5"}})
    split = read_yolo_split(root, "train")
    np.testing.assert_allclose(split.records[0].boxes, [[10, 8, 50, 40]], atol=1e-4)
    assert split.findings.counts() == {"polygon_to_box": 1}


@pytest.mark.parametrize(
    ("label", "kind", "pattern"),
    [("0 0.5 0.5 0.1\n", "malformed_label", r"a\.txt:1.*malformed"),
     ("0 0.5 0.5 0.1 0.1\n0 0.5 x 0.1 0.1\n", "malformed_label", r"a\.txt:2.*malformed"),
     ("3 0.5 0.5 0.1 0.1\n", "unknown_class", r"a\.txt:1.*class id 3 is out of range"),
     ("-1 0.5 0.5 0.1 0.1\n", "unknown_class", r"a\.txt:1.*class id -1"),
     ("0.5 0.5 0.5 0.1 0.1\n", "unknown_class", r"a\.txt:1.*class id 0.5")],
)
def test_bad_label_lines_skip_the_image_naming_file_and_line(
    make_yolo, label: str, kind: str, pattern: str
) -> None:
    root = make_yolo({"train": {"a.jpg": label + "1 0.5 0.5 0.1 0.1\n", "b.jpg": BOX}})
    split = read_yolo_split(root, "train")
    assert [r.image_path.name for r in split.records] == ["b.jpg"]  # the whole image, not the line
    [row] = split.findings.to_rows()
    assert row["kind"] == kind and row["file"].endswith("a.txt")
    assert re.search(pattern, row["detail"]) and row["detail"].endswith("image skipped")
    (root / "train" / "images" / "b.jpg").unlink()  # nothing usable left: the split is an error
    with pytest.raises(DatasetError, match=r"zero images \(1 skipped: .*a\.txt"):
        read_yolo_split(root, "train")


def test_missing_root_split_and_empty_split(make_yolo, tmp_path) -> None:
    with pytest.raises(DatasetError, match=r"nowhere.*data\.root="):
        read_yolo_split(tmp_path / "nowhere", "train")
    root = make_yolo({"train": {"a.jpg": BOX}, "val": {"b.jpg": BOX}})
    with pytest.raises(DatasetError, match=r"'test' not found.*\['train', 'val'\]"):
        read_yolo_split(root, "test")
    (root / "val" / "images" / "b.jpg").unlink()
    with pytest.raises(DatasetError, match="zero images"):
        read_yolo_split(root, "val")


def test_missing_labels_folder_and_names(make_yolo) -> None:
    root = make_yolo({"train": {"a.jpg": BOX}})
    (root / "data.yaml").write_text("train: train/images\n")
    with pytest.raises(DatasetError, match="names"):
        read_yolo_split(root, "train")
    assert read_yolo_split(root, "train", class_names=["a", "b"]).class_names == ["a", "b"]
    (root / "train" / "labels" / "a.txt").unlink()
    (root / "train" / "labels").rmdir()
    with pytest.raises(DatasetError, match=r"Labels folder .*train/labels"):
        read_yolo_split(root, "train", class_names=["a", "b"])


def test_unresolvable_entry_lists_what_was_tried(make_yolo) -> None:
    root = make_yolo({"train": {"a.jpg": BOX}})
    (root / "data.yaml").write_text("train: train/images\nval: ../nope/images\nnames: [a]\n")
    with pytest.raises(DatasetError, match=r"data\.yaml: val: '\.\./nope/images' not found"):
        read_yolo_split(root, "val")


def test_read_split_dispatch(make_yolo) -> None:
    root = make_yolo({"train": {"a.jpg": BOX}})
    assert len(read_split("yolo", root, "train")) == 1
    assert len(read_split("yolo", root / "data.yaml", "train")) == 1
    with pytest.raises(ConfigError, match=r"'xml'.*\['yolo', 'voc', 'coco', 'synthetic', 'semantic'\]"):
        read_split("xml", root, "train")


def test_windows_paths_and_a_valid_folder_resolve_next_to_the_yaml(make_yolo) -> None:
    # tree_counting's data.yaml: absolute Windows paths, and the val split's folder is valid/
    splits = {"train": {"a.jpg": BOX}, "valid": {"b.jpg": BOX}, "test": {"c.jpg": BOX}}
    root = make_yolo(splits, {"train": "C:\\Users\\me\\Downloads\\Trees\\train\\images",
                              "val": "C:\\Users\\me\\Downloads\\Trees\\valid\\images",
                              "test": "/home/someone/trees/test/images", "names": ["a", "b", "c"]})
    for name, expected in (("train", "a.jpg"), ("val", "b.jpg"), ("valid", "b.jpg"),
                           ("test", "c.jpg")):
        split = read_yolo_split(root, name)
        assert [r.image_path.name for r in split.records] == [expected]
        [row] = split.findings.to_rows()
        assert row["kind"] == "resolved_path" and "does not resolve" in row["detail"]
        assert "next to data.yaml" in row["detail"]


def test_a_val_entry_pointing_nowhere_falls_back_to_the_valid_folder(make_yolo) -> None:
    root = make_yolo({"train": {"a.jpg": BOX}, "valid": {"b.jpg": BOX}},
                     {"train": "train/images", "val": "val/images", "names": ["a", "b", "c"]})
    split = read_yolo_split(root, "val")
    assert [r.image_path.name for r in split.records] == ["b.jpg"]
    assert str(root / "valid" / "images") in split.findings.to_rows()[0]["detail"]
