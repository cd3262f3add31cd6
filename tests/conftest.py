"""Fixtures shared across the test tree: one small real training run that later stages reuse."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir

from tests.data.helpers import shared_datasets


def pytest_runtest_setup(item: pytest.Item) -> None:
    """``real_data("bccd", ...)`` tests need those shared datasets: skipped where they are absent, except
    under CI (``CI`` set), where a skip would hide them: there the test fails, naming the folder."""
    for marker in item.iter_markers("real_data"):
        missing = [shared_datasets() / name for name in marker.args if not (shared_datasets() / name).exists()]
        if not missing:
            continue
        message = (f"needs the shared datasets {', '.join(map(str, missing))} "
                   "($YOLOTL_SHARED_DATASETS or ../shared/datasets)")
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI runs the real-data tests, so they must be there", pytrace=False)
        pytest.skip(message)


_RUNNING: list[pytest.Item] = []  # the test being set up, run or torn down


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    _RUNNING.append(item)
    try:
        yield
    finally:
        _RUNNING.pop()


@pytest.fixture(autouse=True, scope="session")
def _fits_are_slow():
    """The fast lane (``-m "not slow"``) runs no fit: ``Trainer.fit`` in this process, from a test or from
    any fixture it sets up, fails a test not marked ``slow``, so a fit-based test cannot slip into the lane
    unmarked. (A fit in a ``yolotl-train`` subprocess is not seen here; those tests are marked by hand.)"""
    import lightning.pytorch as pl

    fit = pl.Trainer.fit

    def guarded_fit(self, *args, **kwargs):
        if _RUNNING and _RUNNING[-1].get_closest_marker("slow") is None:
            pytest.fail(f"{_RUNNING[-1].nodeid} trains (Trainer.fit): mark it @pytest.mark.slow", pytrace=False)
        return fit(self, *args, **kwargs)

    pl.Trainer.fit = guarded_fit
    yield
    pl.Trainer.fit = fit


@pytest.fixture(autouse=True, scope="session")
def _ctrl_c_delivered():
    """The Ctrl-C tests send SIGINT to pytest itself and to the commands it starts. A shell starts a
    background job (``pytest ... &`` in a script) with SIGINT ignored, which every child inherits, so those
    tests would see no Ctrl-C at all: Python's own handler instead (children then start with the default)."""
    ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    if ignored:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.fixture(autouse=True, scope="session")
def _session_cache(tmp_path_factory: pytest.TempPathFactory):
    """The test session's own yolotl cache (data health cache, decoded images): tests neither read a
    user's cache nor leave files in it; subprocesses inherit it through the environment."""
    patch = pytest.MonkeyPatch()
    patch.setenv("YOLOTL_CACHE", str(tmp_path_factory.mktemp("yolotl-cache")))
    yield
    patch.undo()


FIT_THREADS = 2  # the thread count of every fit a test scores: this project's machines have 2 cores


@contextmanager
def fixed_threads(count: int = FIT_THREADS) -> Iterator[None]:
    """Run a fit whose numbers a test checks with ``count`` torch threads, whatever the machine has: the
    float sums (and so the fit) differ with the thread count. The CPU itself still matters, which is why
    the bounds such tests use come from a margin (trained against untrained), never one run's value."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class TrainedRun:
    run_dir: Path  # the yolotl-train run folder (checkpoints/, logs/metrics.csv, config.yaml, metrics.json)
    data_root: Path  # the synthetic YOLO dataset it trained on (train/val/test, 128 px)
    metrics: dict[str, Any]  # what train() returned

    @property
    def checkpoint(self) -> Path:
        return self.run_dir / "checkpoints" / "best.ckpt"


TRAINED_RUN_OVERRIDES = [
    "data.image_size=128",
    "data.reading.synthetic.image_size=128",
    "data.reading.synthetic.num_train=96",
    "data.reading.synthetic.num_val=20",
    "data.reading.synthetic.num_test=20",
    "data.loader.num_workers=0",
    "trainer.max_epochs=8",
    "logger=csv",
]


def _trained_run_key() -> str:
    """What the fit depends on: yolotl's code and configs, this fixture, the libraries it runs on."""
    import importlib.metadata

    from yolotl.api import config_dir

    digest = hashlib.sha256()
    repo = Path(__file__).resolve().parents[1]
    for folder in (repo / "src" / "yolotl", Path(config_dir())):
        for path in sorted(p for p in folder.rglob("*") if p.suffix in (".py", ".yaml")):
            digest.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    digest.update(Path(__file__).read_bytes())
    for name in ("torch", "lightning", "timm", "albumentations", "numpy", "opencv-python-headless"):
        try:
            digest.update(f"{name}={importlib.metadata.version(name)}".encode())
        except importlib.metadata.PackageNotFoundError:
            digest.update(name.encode())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="session")
def trained_run() -> TrainedRun:
    """An 8-epoch fit on 128 px synthetic data through the Hydra config (about a minute on 2 CPU cores).

    Slow: only tests marked ``slow`` should request it. It learns enough (mAP50 well above 0.4) for
    evaluation, prediction and export tests to compare real detections.

    The README's test command runs two pytest processes and both need this fit: the first one to finish
    it leaves it under the temp folder (``yolotl-test-fits/<checkout>/<key>``), and a later process whose yolotl
    code, configs, fixture and libraries hash to the same key uses it as it stands (tests only add to the
    run folder, as they do within one process). Any change to the code makes a new key, so a new fit.
    """
    from yolotl.api import config_dir, train

    checkout = hashlib.sha256(str(Path(__file__).resolve().parents[1]).encode()).hexdigest()[:12]
    fits = Path(tempfile.gettempdir()) / "yolotl-test-fits" / checkout  # each checkout fits for itself
    fits.mkdir(parents=True, exist_ok=True)
    key = _trained_run_key()
    root = fits / key
    with open(fits / "lock", "w") as lock:  # two sessions at once: one fits, the other waits and reuses
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = root / "returned_metrics.json"
        if not done.is_file():
            for stale in fits.iterdir():  # this checkout's fits of older code, or one cut short
                if stale.is_dir():
                    shutil.rmtree(stale, ignore_errors=True)
            overrides = [f"paths.output_dir={root}/run", f"data.root={root}/synthetic", *TRAINED_RUN_OVERRIDES]
            with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
                cfg = compose(config_name="train", overrides=overrides)
            with fixed_threads():
                metrics = train(cfg)
            partial = done.with_suffix(".partial")
            partial.write_text(json.dumps(metrics))
            partial.replace(done)  # written last: a fit cut short is never reused
        metrics = json.loads(done.read_text())
    return TrainedRun(run_dir=root / "run", data_root=root / "synthetic", metrics=metrics)
