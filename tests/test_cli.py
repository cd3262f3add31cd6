"""The yolotl-train entry point: bad input stops before training with one clear message."""

import subprocess
import sys
import zlib

import pytest
from hydra import compose, initialize_config_dir

from tests.data.helpers import voc_xml, write_image
from yolotl.errors import BackboneError, DatasetError
from yolotl.api import build, config_dir


def _cfg(tmp_path, *overrides):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose(config_name="train", overrides=[f"paths.output_dir={tmp_path}", *overrides])


def _voc(root, objects_by_id: dict[str, list], splits: dict[str, list[str]]):
    """A tiny VOC dataset: one 100x80 image per id, objects as (name, box, difficult)."""
    for image_id, objects in objects_by_id.items():
        write_image(root / "JPEGImages" / f"{image_id}.jpg", 100, 80, seed=zlib.crc32(image_id.encode()))
        (root / "Annotations").mkdir(parents=True, exist_ok=True)
        (root / "Annotations" / f"{image_id}.xml").write_text(voc_xml(f"{image_id}.jpg", objects))
    (root / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    for split, ids in splits.items():
        (root / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(i + "\n" for i in ids))
    return root


def test_empty_split_stops_with_its_name(tmp_path):
    root = _voc(tmp_path / "voc", {"a": [("cat", (10, 10, 50, 50), 0)]}, {"train": ["a"], "val": []})
    with pytest.raises(DatasetError, match="val"):
        build(_cfg(tmp_path, "data=voc", f"data.root={root}", "pretrained=false"))


def test_unknown_class_name_stops_with_file_and_known_classes_under_strict(tmp_path):
    root = _voc(
        tmp_path / "voc",
        {"a": [("cat", (10, 10, 50, 50), 0)], "b": [("dgo", (5, 5, 40, 40), 0)], "c": [("dog", (5, 5, 40, 40), 0)]},
        {"train": ["a", "b"], "val": ["c"]},
    )
    args = ["data=voc", f"data.root={root}", "data.reading.class_names=[cat,dog]", "pretrained=false",
            "backbone=mobilenetv3_small_100"]
    with pytest.raises(DatasetError, match="dgo") as err:
        build(_cfg(tmp_path, *args, "data.checks.policy=strict"))
    assert "b.xml" in str(err.value) and "cat" in str(err.value) and "data.checks.policy=fix" in str(err.value)
    datamodule, _, _ = build(_cfg(tmp_path, *args))  # data.checks.policy=fix (default): b is skipped and counted
    assert [r.image_path.name for r in datamodule.split("train").records] == ["a.jpg"]
    assert datamodule.health.totals()["unknown_class"] == 1  # (dog, now only in val, is reported too)


def test_missing_dataset_folder_stops_with_the_path(tmp_path):
    missing = tmp_path / "no-such-dataset"
    with pytest.raises(DatasetError, match="no-such-dataset"):
        build(_cfg(tmp_path, "data=voc", f"data.root={missing}"))


def test_unknown_backbone_stops_before_training(tmp_path):
    cfg = _cfg(tmp_path, "backbone=resnet_18", "pretrained=false", f"data.root={tmp_path}/synthetic",
               "data.reading.synthetic.num_train=4", "data.reading.synthetic.num_val=2", "data.reading.synthetic.num_test=2")
    with pytest.raises(Exception) as err:
        build(cfg)
    cause = err.value.__cause__ or err.value
    assert isinstance(cause, BackboneError) and "resnet18" in str(cause)


@pytest.mark.slow
def test_cli_prints_one_line_error_and_exit_code_2(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "yolotl.cli.train", "experiment=bccd", f"data.root={tmp_path}/missing",
         f"hydra.run.dir={tmp_path}/run"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2
    assert "yolotl: error:" in result.stderr and "missing" in result.stderr
    assert "Traceback" not in result.stderr


def test_absent_test_split_is_found_before_training_and_skipped(tmp_path):
    root = _voc(tmp_path / "voc", {"a": [("cat", (10, 10, 50, 50), 0)], "b": [("cat", (5, 5, 50, 50), 0)]},
                {"train": ["a"], "val": ["b"]})
    datamodule, module, strategy = build(_cfg(tmp_path, "data=voc", f"data.root={root}", "pretrained=false",
                                              "backbone=mobilenetv3_small_100"))
    assert not datamodule.has_test_split
    assert module.detector.class_names == ["cat"] and strategy.name == "finetune"
