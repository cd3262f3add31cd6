"""What ``yolotl-train`` prints: a start summary, one line per validation, the end summary, and no
third-party chatter (faster_coco_eval's AP/AR tables, Lightning's tips and info lines, metric tables)."""

import logging
import subprocess
import sys

import pytest

from yolotl.cli.console import ConsoleFilter, ConsoleFormatter, DropLightningTips

SMALL = ["pretrained=false", "backbone=mobilenetv3_small_100", "data.image_size=64", "data.reading.synthetic.image_size=64",
         "data.reading.synthetic.num_train=16", "data.reading.synthetic.num_val=4", "data.reading.synthetic.num_test=4", "logger=csv"]


def _record(name: str, level: int, msg: str) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, None, None)


def test_console_filter_keeps_yolotl_info_and_every_warning():
    keep = ConsoleFilter().filter
    assert keep(_record("yolotl.train", logging.INFO, "data ..."))
    assert keep(_record("yolotl", logging.INFO, "x"))
    assert not keep(_record("lightning.pytorch.utilities.rank_zero", logging.INFO, "GPU available: False"))
    assert not keep(_record("faster_coco_eval.core.cocoeval", logging.INFO, " Average Recall ..."))
    assert not keep(_record("yolotlx", logging.INFO, "not ours"))
    assert keep(_record("lightning.pytorch", logging.WARNING, "careful"))
    assert not DropLightningTips().filter(_record("lightning.pytorch.utilities.rank_zero", logging.INFO,
                                                  "\N{ELECTRIC LIGHT BULB} Tip: For seamless cloud logging"))
    assert DropLightningTips().filter(_record("lightning.pytorch.utilities.rank_zero", logging.INFO, "Restoring"))
    formatter = ConsoleFormatter("%(message)s")
    assert formatter.format(_record("yolotl.x", logging.INFO, "hello")) == "hello"
    assert formatter.format(_record("yolotl.x", logging.WARNING, "careful")) == "warning: careful"


def test_train_help_says_what_yolotl_does_and_keeps_the_config_groups():
    done = subprocess.run([sys.executable, "-m", "yolotl.cli.train", "--help"], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    first = done.stdout.lstrip().splitlines()[0]
    assert first.startswith("yolotl-train:") and "object detector" in first and "powered by Hydra" not in first
    assert "== Configuration groups ==" in done.stdout
    assert "strategy: end_to_end, feature_extract, finetune, progressive" in done.stdout


def test_check_data_help_says_what_it_does():
    done = subprocess.run([sys.executable, "-m", "yolotl.cli.check_data", "--help"], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.lstrip().startswith("yolotl-check-data: the dataset health report")
    assert "== Configuration groups ==" in done.stdout


@pytest.mark.slow
def test_train_console_is_short_and_says_what_matters(tmp_path):
    epochs = 3
    done = subprocess.run(
        [sys.executable, "-m", "yolotl.cli.train", "debug=fast", f"trainer.max_epochs={epochs}", *SMALL,
         f"data.root={tmp_path}/synthetic", f"hydra.run.dir={tmp_path}/run"],
        capture_output=True, text=True, timeout=400, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    console = done.stdout + done.stderr
    lines = console.splitlines()
    assert "Average Recall" not in console and "Average Precision" not in console
    assert "Tip" not in console and "litlogger" not in console
    assert "GPU available" not in console and "Loading `train_dataloader`" not in console
    assert "LeafSpec" not in console and "Validate metric" not in console and "Test metric" not in console
    for start in ("data      synthetic at", "classes   3, training boxes: circle", "model     mobilenetv3_small_100",
                  "strategy  finetune: frozen", "training  64 px, batch 16, 3 epochs, device cpu",
                  f"run       {tmp_path}/run"):
        assert sum(line.startswith(start) for line in lines) == 1, (start, console)
    validations = [line for line in lines if " val mAP50-95 " in line and line.startswith("epoch ")]
    assert [line.split()[1] for line in validations] == [f"{e}/{epochs}" for e in range(1, epochs + 1)], console
    assert "best " in validations[-1]
    assert any(line.startswith("best checkpoint (best.ckpt): test mAP50-95") for line in lines), console
    assert f"run folder: {tmp_path}/run" in console
    assert any(line.startswith("test mAP50-95 ") and line.endswith(" s)") for line in lines), console  # the last line
    assert len(lines) < 45, console

    log = (tmp_path / "run" / "train.log").read_text()
    assert "GPU available" in log and "epoch 1/3  val mAP50-95" in log  # the log file keeps the detail
    assert "Average Recall" not in log and "Tip:" not in log
