"""Run folders: a failed run leaves nothing that looks finished; ``latest`` points at the last good one;
``yolotl-check-data out=...`` creates no run folder of its own."""

import os
import subprocess
import sys

import pytest

from yolotl.training.run import discard_failed_run, link_latest

SMALL = ["pretrained=false", "backbone=mobilenetv3_small_100", "data.image_size=64", "data.reading.synthetic.image_size=64",
         "data.reading.synthetic.num_train=8", "data.reading.synthetic.num_val=4", "data.reading.synthetic.num_test=4", "logger=csv"]


def _run_folder(path, *extra):
    (path / ".hydra").mkdir(parents=True)
    (path / ".hydra" / "config.yaml").write_text("x: 1\n")
    (path / "config.yaml").write_text("x: 1\n")
    (path / "train.log").write_text("...\n")
    (path / "logs").mkdir()
    (path / "logs" / "hparams.yaml").write_text("{}\n")
    (path / "checkpoints").mkdir()
    for name in extra:
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text("x")
    return path


def test_a_run_that_failed_before_its_first_checkpoint_is_removed(tmp_path):
    run = _run_folder(tmp_path / "run", "data_health.json")
    assert discard_failed_run(run, ValueError("bad data")) == "removed"
    assert not run.exists() and tmp_path.exists()


@pytest.mark.parametrize("extra", ["checkpoints/last.ckpt", "notes.txt"])
def test_a_run_with_checkpoints_or_foreign_files_is_marked_failed(tmp_path, extra):
    run = _run_folder(tmp_path / "run", extra)
    assert discard_failed_run(run, ValueError("out of memory")) == "marked"
    assert (run / extra).is_file()
    assert (run / "FAILED").read_text() == "ValueError: out of memory\n"


def test_a_folder_the_run_did_not_make_is_never_removed(tmp_path):
    # the user's own folder as paths.output_dir: no .hydra/, existed before the run
    run = tmp_path / "mine"
    run.mkdir()
    (run / "train.log").write_text("the user's own log\n")
    (run / "logs").mkdir()
    assert discard_failed_run(run, ValueError("bad data")) == "marked"
    assert (run / "train.log").read_text() == "the user's own log\n"
    assert discard_failed_run(tmp_path / "mine", ValueError("bad data"), created=True) == "removed"


def test_no_folder_nothing_to_do(tmp_path):
    assert discard_failed_run(tmp_path / "absent", ValueError("x")) is None


def test_latest_is_a_relative_link_replaced_by_the_next_run(tmp_path):
    first, second = tmp_path / "2026-01-01" / "a", tmp_path / "2026-01-02" / "b"
    first.mkdir(parents=True)
    second.mkdir(parents=True)
    link = link_latest(first, tmp_path)
    assert link == tmp_path / "latest" and link.resolve() == first.resolve()
    assert os.readlink(link) == os.path.join("2026-01-01", "a")
    link_latest(second, tmp_path)
    assert (tmp_path / "latest").resolve() == second.resolve()
    (tmp_path / "latest").unlink()
    (tmp_path / "latest").mkdir()  # a real folder named latest is left alone
    assert link_latest(first, tmp_path) is None and (tmp_path / "latest").is_dir()


@pytest.mark.slow
def test_cli_failed_run_leaves_no_folder_and_a_good_run_becomes_latest(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    failed = subprocess.run([sys.executable, "-m", "yolotl.cli.train", "data=voc", f"data.root={tmp_path}/absent"],
                            cwd=work, capture_output=True, text=True, timeout=300, check=False)
    assert failed.returncode == 2 and "yolotl: error:" in failed.stderr, failed.stderr
    assert not list(work.glob("outputs/*/*")), list(work.rglob("*"))

    done = subprocess.run([sys.executable, "-m", "yolotl.cli.train", "debug=fast", *SMALL,
                           f"data.root={tmp_path}/synthetic"],
                          cwd=work, capture_output=True, text=True, timeout=400, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = list(work.glob("outputs/*/*_synthetic_finetune"))
    assert len(runs) == 1, list(work.rglob("*"))
    latest = work / "outputs" / "latest"
    assert latest.is_symlink() and latest.resolve() == runs[0].resolve()
    assert (latest / "checkpoints" / "best.ckpt").is_file()
    assert "(also outputs/latest)" in done.stdout


@pytest.mark.slow
def test_check_data_with_out_creates_no_outputs_folder(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    done = subprocess.run([sys.executable, "-m", "yolotl.cli.check_data", f"data.root={tmp_path}/synthetic",
                           "data.reading.synthetic.num_train=4", "data.reading.synthetic.num_val=2", "data.reading.synthetic.num_test=2",
                           "data.reading.synthetic.image_size=64", f"out={tmp_path}/report"],
                          cwd=work, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "report" / "data_health.json").is_file()
    assert list(work.iterdir()) == []  # no outputs/, no .hydra/, no log file
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == ["data_health.json"]


def test_out_of_memory_names_the_batch_and_image_size_to_lower(tmp_path, monkeypatch):
    import lightning.pytorch as pl
    from hydra import compose, initialize_config_dir

    from yolotl import ConfigError
    from yolotl.api import config_dir, train

    def out_of_memory(*args, **kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(pl.Trainer, "fit", out_of_memory)
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[
            f"paths.output_dir={tmp_path}/run", f"data.root={tmp_path}/synthetic", "data.reading.synthetic.num_train=8",
            "data.reading.synthetic.num_val=4", "data.reading.synthetic.num_test=4", "pretrained=false", "data.loader.num_workers=0"])
    with pytest.raises(ConfigError, match=r"out of memory at data.batch_size=16, data.image_size=256 .*"
                                          r"lower data.batch_size \(e.g. 8.*data.image_size \(e.g. 160\)"):
        train(cfg)
