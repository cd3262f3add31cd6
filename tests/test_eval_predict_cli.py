"""yolotl-eval and yolotl-predict: real runs on a trained checkpoint, and one clear line for bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import yolotl
from yolotl import CheckpointError, DatasetError
from yolotl.api import find_images, predict_source


def _cli(script: str, *args: str) -> subprocess.CompletedProcess:
    """Run an installed console script of this environment."""
    executable = Path(sys.executable).parent / script
    return subprocess.run([str(executable), *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("module", ["yolotl-eval", "yolotl-predict"])
def test_missing_checkpoint_is_one_line_and_exit_2(tmp_path, module):
    extra = [f"source={tmp_path}"] if module == "yolotl-predict" else []
    done = _cli(module, f"ckpt={tmp_path}/nope.ckpt", *extra)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [f"yolotl: error: checkpoint {tmp_path}/nope.ckpt not found"]
    assert not list(tmp_path.iterdir())  # nothing written, no Hydra output folders either


def test_find_images_errors_name_the_source(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        find_images(tmp_path / "missing")
    with pytest.raises(DatasetError, match="no images"):
        find_images(tmp_path)
    (tmp_path / "b.png").write_bytes(b"")
    (tmp_path / "a.jpg").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in find_images(tmp_path)] == ["a.jpg", "b.png"]
    assert [p.name for p in find_images(f"{tmp_path}/*.png")] == ["b.png"]


@pytest.mark.slow
def test_predict_folder_skips_and_lists_unreadable_files(trained_run, tmp_path):
    source = tmp_path / "images"
    shutil.copytree(trained_run.data_root / "test" / "images", source)
    (source / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    images = sorted(p for p in source.iterdir() if p.name != "broken.jpg")

    result = predict_source(trained_run.checkpoint, source, output_dir=tmp_path / "out", score_threshold=0.3)

    assert [s["image"] for s in result["skipped"]] == [str(source / "broken.jpg")]
    assert len(result["images"]) == len(images) == len(list((tmp_path / "out").glob("*.jpg")))
    saved = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert saved["skipped"] == result["skipped"] and len(saved["images"]) == len(images)
    # the JSON boxes are the API's boxes in original pixels
    detector = yolotl.load(trained_run.checkpoint)
    first = detector.predict(images[0], score_threshold=0.3)[0]
    entry = next(e for e in saved["images"] if e["image"] == str(images[0]))
    assert len(entry["detections"]) == len(first["boxes"]) > 0
    assert torch.allclose(torch.tensor([d["box"] for d in entry["detections"]]), first["boxes"], atol=0.01)
    assert {d["class_name"] for d in entry["detections"]} <= {"circle", "square", "triangle"}


@pytest.mark.slow
def test_predict_cli_filters_classes_and_single_unreadable_file_is_an_error(trained_run, tmp_path):
    pattern = str(trained_run.data_root / "test" / "images" / "*.png")
    out = tmp_path / "pred"
    done = _cli("yolotl-predict", f"ckpt={trained_run.checkpoint}", f"source='{pattern}'", f"output_dir={out}",
                "classes=[circle]", "score_threshold=0.2")
    assert done.returncode == 0, done.stderr
    saved = json.loads((out / "predictions.json").read_text())
    labels = [d["class_name"] for e in saved["images"] for d in e["detections"]]
    assert labels and set(labels) == {"circle"}

    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG nothing")
    done = _cli("yolotl-predict", f"ckpt={trained_run.checkpoint}", f"source={broken}", f"output_dir={out}")
    assert done.returncode == 2 and done.stderr.startswith(f"yolotl: error: Cannot read image {broken}")
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_eval_cli_on_the_runs_own_data_and_bad_inputs(trained_run, tmp_path):
    out = tmp_path / "eval"
    done = _cli("yolotl-eval", f"ckpt={trained_run.checkpoint}", "split=val", f"output_dir={out}", "report=false")
    assert done.returncode == 0, done.stderr
    assert "val mAP50-95 " in done.stdout
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["split"] == "val" and saved["metrics"]["map_50"] >= 0.4
    assert {"at_confidence/precision", "at_confidence/recall", "ap/circle", "ap50/square"} <= set(saved["metrics"])

    # a checkpoint outside its run folder needs data=...; the message says so
    lone = tmp_path / "lone.ckpt"
    shutil.copy(trained_run.checkpoint, lone)
    done = _cli("yolotl-eval", f"ckpt={lone}")
    assert done.returncode == 2 and "pass data=" in done.stderr
    # a dataset with other classes is refused, not scored
    other = tmp_path / "other"
    shutil.copytree(trained_run.data_root, other)
    yaml_path = other / "data.yaml"
    yaml_path.write_text(yaml_path.read_text().replace("circle", "ring"))
    done = _cli("yolotl-eval", f"ckpt={lone}", "data=yolo", f"data.root={other}")
    assert done.returncode == 2 and "differ from" in done.stderr, done.stderr


def test_evaluate_refuses_an_unknown_split(tmp_path):
    dm = yolotl.DetectionDataModule(root=str(tmp_path / "syn"), format="synthetic", image_size=64, reading={"synthetic": {"num_train": 2, "num_val": 2, "num_test": 0, "image_size": 64}})
    with pytest.raises(DatasetError, match="unknown split 'holdout'"):
        dm.split("holdout")
    with pytest.raises(CheckpointError):
        yolotl.evaluate(tmp_path / "none.ckpt", data=dm)
