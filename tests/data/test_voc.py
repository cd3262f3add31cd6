"""VOC reader: 1-based conversion, class collection, the box rule and the hard errors."""

from __future__ import annotations

import re

import numpy as np
import pytest

from yolotl.data import read_voc_split
from yolotl.errors import DatasetError

from .helpers import voc_xml, write_image


def test_one_based_inclusive_boxes_become_zero_based(make_voc) -> None:
    xml = voc_xml("img1.jpg", [("cat", (1, 1, 10, 20), 0), ("dog", (50, 40, 100, 80), 0)])
    root = make_voc({"train": {"img1": xml}})
    split = read_voc_split(root, "train")
    record = split.records[0]
    np.testing.assert_array_equal(record.boxes, [[0, 0, 10, 20], [49, 39, 100, 80]])
    assert record.labels.tolist() == [0, 1] and split.class_names == ["cat", "dog"]
    assert (record.width, record.height) == (100, 80)
    assert record.image_path == root / "JPEGImages" / "img1.jpg"  # <path> ignored
    assert not split.findings


def test_class_names_collected_over_all_splits_in_id_order(make_voc) -> None:
    root = make_voc({
        "train": {"b": voc_xml("b.jpg", [("dog", (1, 1, 9, 9), 0)])},
        "test": {"a": voc_xml("a.jpg", [("cat", (1, 1, 9, 9), 0)]),
                 "c": voc_xml("c.jpg", [("bird", (1, 1, 9, 9), 0)])},
    })
    assert read_voc_split(root, "train").class_names == ["cat", "dog", "bird"]
    assert read_voc_split(root, "test").class_names == ["cat", "dog", "bird"]
    given = read_voc_split(root, "train", class_names=["bird", "dog", "cat"])
    assert given.records[0].labels.tolist() == [1]


def test_filename_and_size_fallbacks(make_voc) -> None:
    root = make_voc({"train": {"x1": voc_xml(None, [("cat", (1, 1, 9, 9), 0)], size=None)}})
    record = read_voc_split(root, "train").records[0]
    assert record.image_path.name == "x1.jpg" and (record.width, record.height) == (100, 80)


def test_box_rule_and_difficult(make_voc) -> None:
    objects = [("cat", (504, 33, 504, 33), 0),    # zero-area as written -> dropped
               ("cat", (5, 5, 5, 9), 0),          # zero width as written -> dropped
               ("cat", (90, 70, 130, 95), 0),     # out of bounds -> clipped
               ("dog", (10, 10, 20, 20), 1)]      # difficult -> kept, flagged and counted
    root = make_voc({"test": {"z": voc_xml("z.jpg", objects),
                              "e": voc_xml("e.jpg", [])}})
    split = read_voc_split(root, "test")
    assert split.findings.counts() == {"dropped_degenerate_box": 2, "clipped_box": 1,
                                      "difficult_object": 1, "background_image": 1}
    z = split.records[0]
    np.testing.assert_array_equal(z.boxes, [[89, 69, 100, 80], [9, 9, 20, 20]])
    # flags follow the boxes the box rule kept: evaluation ignores the difficult dog, training keeps it
    assert z.difficult.tolist() == [False, True] and z.ignored.tolist() == [False, True]
    assert z.crowd.tolist() == [False, False] and z.for_training() is z
    [difficult] = [f for f in split.findings if f.kind == "difficult_object"]
    assert "ignored by evaluation" in difficult.detail
    assert len(split.records[1].labels) == 0
    assert "z.xml" in split.findings.summary()


def test_unknown_class_skips_the_image_naming_file_and_name(make_voc) -> None:
    root = make_voc({"train": {"q": voc_xml("q.jpg", [("cat", (1, 1, 9, 9), 0),
                                                      ("zebra", (1, 1, 9, 9), 0)]),
                               "r": voc_xml("r.jpg", [("cat", (1, 1, 9, 9), 0)])}})
    split = read_voc_split(root, "train", class_names=["cat"])
    assert [r.image_path.name for r in split.records] == ["r.jpg"]  # the whole image, not the box
    [row] = split.findings.to_rows()
    assert row["kind"] == "unknown_class" and row["file"].endswith("q.xml")
    assert re.search(r"q\.xml.*'zebra'.*\['cat'\]", row["detail"])


def test_missing_split_lists_existing(make_voc) -> None:
    root = make_voc({"train": {"q": voc_xml("q.jpg", [("cat", (1, 1, 9, 9), 0)])},
                     "val": {"r": voc_xml("r.jpg", [("cat", (1, 1, 9, 9), 0)])}})
    with pytest.raises(DatasetError, match=r"'test' not found.*\['train', 'val'\]"):
        read_voc_split(root, "test")


def _skipped(root, kind: str, pattern: str) -> None:
    """q is skipped (logged as ``kind``, detail matching ``pattern``), r is still read."""
    split = read_voc_split(root, "train", class_names=["cat"])
    assert [r.image_path.name for r in split.records] == ["r.jpg"]
    [row] = split.findings.to_rows()
    assert row["kind"] == kind and re.search(pattern, row["detail"]), row


def test_bad_xml_missing_image_missing_xml_skip_the_image(make_voc, tmp_path) -> None:
    cat = [("cat", (1, 1, 9, 9), 0)]
    root = make_voc({"train": {"q": voc_xml("q.jpg", cat), "r": voc_xml("r.jpg", cat)}})
    (root / "JPEGImages" / "q.jpg").unlink()
    _skipped(root, "skipped_missing_image", r"JPEGImages/q\.jpg.*missing")
    write_image(root / "JPEGImages" / "q.jpg", 100, 80)
    (root / "Annotations" / "q.xml").write_text("<annotation><object>")
    _skipped(root, "unparseable_annotation", r"Cannot parse .*q\.xml")
    (root / "Annotations" / "q.xml").write_text("<annotation><object><name>cat</name></object>"
                                                "</annotation>")
    _skipped(root, "malformed_label", r"q\.xml.*no <bndbox>")
    (root / "Annotations" / "q.xml").unlink()
    _skipped(root, "missing_annotation", r"q\.xml is missing")
    with pytest.raises(DatasetError, match=r"data\.root="):
        read_voc_split(tmp_path / "nothing", "train")


def test_empty_split_is_an_error(make_voc) -> None:
    root = make_voc({"train": {"q": voc_xml("q.jpg", [("cat", (1, 1, 9, 9), 0)])}})
    (root / "ImageSets" / "Main" / "val.txt").write_text("\n")
    with pytest.raises(DatasetError, match="zero images"):
        read_voc_split(root, "val")
