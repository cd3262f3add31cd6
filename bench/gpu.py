"""GPU benchmark: the tests on CUDA, BCCD's data loader ceiling and BCCD training throughput at 416 px
with 32-true vs bf16-mixed and torch.compile off vs on. One prepared script, one Markdown table.

Phases, each time-boxed in its own subprocess under one global deadline (``--budget-s``, default 540 s);
each prints its table row as soon as it is done, so a timeout still leaves the rows before it:

- **A, tests on CUDA** (``--tests``, default on; 150 s): a CUDA-relevant subset of the pytest suite with
  the GPU visible: the bf16-mixed tests (``tests/training/test_precision.py``), the end-to-end Hydra fit
  (``tests/test_train_e2e.py``: ``trainer.accelerator=auto``, so on the GPU) and the predict / eval tests
  (``tests/test_eval_predict_cli.py``: ``device=auto``, so on the GPU). Pass / fail / skip counts.
- **B, data loader ceiling**: BCCD's training DataLoader alone (no model), composed exactly as
  ``yolotl-train experiment=bccd`` does (416 px, batch 16, augment medium, RAM cache), images/s over
  ``--loader-batches`` batches after the first; once with the workers the config uses
  (``data.loader.num_workers=auto``: one per spare core, at most 4) and once with one per spare core (up to 12).
- **C, fit throughput**: four short fits of BCCD, ``experiment=bccd trainer=gpu`` with
  ``trainer.precision`` 32-true / bf16-mixed, torch.compile off / on, each in a fresh process: the
  DataModule and module from ``yolotl.api.build(cfg)``, the Trainer from
  ``yolotl.api.trainer.build_trainer`` (a yolotl-train run's, with its EMA callback), validation and
  checkpointing off. ``--warmup-steps`` steps (cache fill, worker start, cuDNN, compilation), then
  ``--measure-steps`` timed steps: images/s of the fit (data loading included), images/s of the steps
  alone (the time between batches left out), the share of time waiting for the next batch, GPU utilisation
  (pynvml, else ``nvidia-smi``, sampled every 0.1-0.2 s over the timed steps), peak GPU memory
  (``torch.cuda.max_memory_allocated`` over the whole fit, per process). yolotl has no compile option: the
  script calls ``detector.compile()`` (``torch.nn.Module.compile``, the detector only; the loss and
  assigner stay eager) when the fit starts. Each step ends with one
  ``torch.cuda.synchronize()`` for its timing (the step syncs once anyway, on its finite-loss check).

Run it on the GPU machine (about 6-8 minutes; never past ``--budget-s``)::

    python bench/gpu.py --data-root <bccd folder>

and here, on the CPU, to check every code path first (batch 2, 128 px, a few steps, no GPU figures,
phase A capped at 60 s, compile with ``backend="eager"`` since inductor's CPU compile takes minutes)::

    python bench/gpu.py --dry-run

The table and the header (torch / CUDA versions, GPU, date, command line) go to stdout, progress to
stderr; every figure goes to ``$OUT/gpu_bench.json`` (``./gpu_bench.json`` without ``OUT``), the table to
``gpu_bench.md`` and every subprocess's output to ``gpu_bench.log`` beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULT_MARK = "@@GPU_BENCH_RESULT@@ "
COLUMNS = ("phase", "setting", "images/s", "step-only images/s", "waiting for data", "GPU util %",
           "peak GPU mem GiB", "warm-up s", "notes")
# Phase A: tests whose code paths change when CUDA is there (Hydra fit on accelerator=auto with pinned
# memory, predict/eval on device=auto) plus the bf16 tests. The file with quick tests on top goes first, so a
# run cut at its cap (the CPU dry run) still counts some.
TESTS = [
    "tests/test_eval_predict_cli.py",
    "tests/test_train_e2e.py",
    "tests/training/test_precision.py",
]
# These run the installed console scripts (yolotl-eval, yolotl-predict) beside sys.executable.
CLI_TESTS = [
    "tests/test_eval_predict_cli.py::test_missing_checkpoint_is_one_line_and_exit_2",
    "tests/test_eval_predict_cli.py::test_predict_cli_filters_classes_and_single_unreadable_file_is_an_error",
    "tests/test_eval_predict_cli.py::test_eval_cli_on_the_runs_own_data_and_bad_inputs",
]
VARIANTS = ("32-true:off", "bf16-mixed:off", "bf16-mixed:on", "32-true:on")


@dataclass
class Plan:
    """Sizes, caps and steps of one invocation (the GPU run or the CPU dry run)."""

    gpu: bool
    image_size: int
    batch_size: int
    warmup_steps: int
    measure_steps: int
    loader_batches: int
    tests_cap_s: float
    loader_cap_s: float
    eager_cap_s: float
    compile_cap_s: float
    compile_backend: str
    extra: dict[str, Any] = field(default_factory=dict)


def make_plan(args: argparse.Namespace) -> Plan:
    if args.dry_run:
        plan = Plan(gpu=False, image_size=128, batch_size=2, warmup_steps=2, measure_steps=4, loader_batches=6,
                    tests_cap_s=60, loader_cap_s=120, eager_cap_s=180, compile_cap_s=240, compile_backend="eager")
    else:
        plan = Plan(gpu=True, image_size=416, batch_size=16, warmup_steps=10, measure_steps=100, loader_batches=50,
                    tests_cap_s=150, loader_cap_s=60, eager_cap_s=90, compile_cap_s=180, compile_backend="inductor")
    for key in ("image_size", "batch_size", "warmup_steps", "measure_steps", "loader_batches", "compile_backend"):
        if getattr(args, key) is not None:
            setattr(plan, key, getattr(args, key))
    return plan


# ---- output ------------------------------------------------------------------------------------


def progress(message: str) -> None:
    print(f"[gpu.py {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def out_dir() -> Path:
    folder = Path(os.environ.get("OUT") or ".")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def table_line(cells: list[str] | tuple[str, ...]) -> str:
    return "| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |"


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    return f"{value:.{digits}f}"


class Report:
    """The rows so far: printed one by one, saved (JSON, Markdown) after each."""

    def __init__(self, header: dict[str, Any], header_lines: list[str], notes: list[str]) -> None:
        self.header, self.header_lines, self.notes = header, header_lines, notes
        self.rows: list[dict[str, Any]] = []
        self.folder = out_dir()
        print("\n".join(header_lines) + "\n", flush=True)
        print(table_line(COLUMNS) + "\n" + table_line(["---"] * len(COLUMNS)), flush=True)

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        print(table_line(row["cells"]), flush=True)
        self.save()

    def markdown(self) -> str:
        lines = [*self.header_lines, "", table_line(COLUMNS), table_line(["---"] * len(COLUMNS))]
        lines += [table_line(r["cells"]) for r in self.rows]
        return "\n".join([*lines, "", *(f"- {n}" for n in self.notes)]) + "\n"

    def save(self) -> None:
        data = {"header": self.header, "notes": self.notes, "columns": list(COLUMNS), "rows": self.rows}
        (self.folder / "gpu_bench.json").write_text(json.dumps(data, indent=2, default=str))
        (self.folder / "gpu_bench.md").write_text(self.markdown())


# ---- subprocesses ------------------------------------------------------------------------------


@dataclass
class ChildRun:
    rc: int | None
    timed_out: bool
    seconds: float
    lines: list[str]

    def result(self) -> dict[str, Any] | None:
        for line in reversed(self.lines):
            if line.startswith(RESULT_MARK):
                return json.loads(line[len(RESULT_MARK):])
        return None

    def error(self) -> str:
        """The last line that looks like an error, for the notes."""
        if self.timed_out:
            return f"timed out after {self.seconds:.0f} s"
        for line in reversed(self.lines):
            if re.search(r"(Error|Exception|error:)", line) and not line.startswith(RESULT_MARK):
                return line.strip()[:160]
        return f"exit code {self.rc}"


def run_child(cmd: list[str], cap_s: float, title: str, env: dict[str, str] | None = None) -> ChildRun:
    """Run ``cmd`` in its own process group for at most ``cap_s``; its output goes to gpu_bench.log."""
    log_path = out_dir() / "gpu_bench.log"
    start = time.perf_counter()
    lines: list[str] = []
    with open(log_path, "a") as log:
        log.write(f"\n===== {title}: {shlex.join(cmd)} (cap {cap_s:.0f} s) =====\n")
        log.flush()
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace", start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line.rstrip("\n"))
                log.write(line)
                log.flush()

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        timed_out = False
        try:
            proc.wait(timeout=max(1.0, cap_s))
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc)
        reader.join(timeout=10)
        log.write(f"===== {title}: rc {proc.returncode}, {time.perf_counter() - start:.1f} s"
                  f"{', TIMED OUT' if timed_out else ''} =====\n")
    return ChildRun(proc.returncode, timed_out, time.perf_counter() - start, lines)


def _kill_group(proc: subprocess.Popen) -> None:
    """End the child's process group (the child, its loader workers, compile workers): TERM, then KILL."""
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def worker_cmd(spec: dict[str, Any]) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]


# ---- phase A: tests ----------------------------------------------------------------------------


_OUTCOME = re.compile(r"^(\S+::\S+) (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b")
_SUMMARY = re.compile(r"^=+ (.+) in ([\d.]+)s")


def phase_tests(args: argparse.Namespace, plan: Plan, cap_s: float) -> dict[str, Any]:
    """pytest on the chosen tests, CUDA visible; counts from the per-test lines (kept when cut)."""
    tests = shlex.split(args.pytest_args) if args.pytest_args else list(TESTS)
    deselect: list[str] = []
    scripts = Path(sys.executable).parent
    missing_scripts = not (scripts / "yolotl-eval").exists()
    if missing_scripts and not args.pytest_args:
        deselect = CLI_TESTS
    cmd = [sys.executable, "-m", "pytest", "-v", "-rfE", "-p", "no:cacheprovider", "-o", "addopts=", *tests,
           *[a for t in deselect for a in ("--deselect", t)]]
    progress(f"phase A: pytest ({cap_s:.0f} s cap): {' '.join(tests)}")
    run = run_child(cmd, cap_s, "phase A tests")
    outcomes: dict[str, str] = {}
    summary = None
    for line in run.lines:
        if match := _OUTCOME.match(line):
            outcomes[match.group(1)] = match.group(2)
        elif (match := _SUMMARY.match(line)) and ("passed" in line or "failed" in line or "error" in line):
            summary = match.group(1)
    counts = {k: sum(1 for v in outcomes.values() if v == k) for k in ("PASSED", "FAILED", "ERROR", "SKIPPED")}
    failed = [t for t, v in outcomes.items() if v in ("FAILED", "ERROR")]
    text = (f"{counts['PASSED']} passed, {counts['FAILED']} failed, {counts['ERROR']} errors, "
            f"{counts['SKIPPED']} skipped")
    if run.timed_out:
        text += f"; CUT at the {cap_s:.0f} s cap (counts so far)"
    elif run.rc not in (0, 1):
        text += f"; pytest exit code {run.rc}: {run.error()}"
    text += f"; {run.seconds:.0f} s"
    if failed:
        text += "; failed: " + ", ".join(t.split("::")[-1] for t in failed[:4])
    if deselect:
        text += f"; {len(deselect)} console-script tests deselected (no yolotl-eval beside {sys.executable})"
    files = dict.fromkeys(Path(t.split("::")[0]).name for t in tests if not t.startswith("-"))
    setting = f"pytest, CUDA visible: {', '.join(files)}"
    cells = ["A tests", setting, "—", "—", "—", "—", "—", "—", text]
    return {"phase": "A", "cells": cells, "counts": counts, "outcomes": outcomes, "summary": summary,
            "timed_out": run.timed_out, "rc": run.rc, "seconds": round(run.seconds, 1), "command": shlex.join(cmd),
            "deselected": deselect}


# ---- phase B and C: workers in subprocesses -----------------------------------------------------


def overrides(spec: dict[str, Any]) -> list[str]:
    """What a user would type after ``yolotl-train``: the BCCD experiment, sizes, device, precision."""
    device = ["trainer=gpu"] if spec["gpu"] else ["trainer.accelerator=cpu"]
    items = [
        "experiment=bccd",
        f"data.root={spec['data_root']}",
        "data.reading.class_names=[RBC,WBC,Platelets]",
        f"data.image_size={spec['image_size']}",
        f"data.batch_size={spec['batch_size']}",
        *device,
    ]
    if spec.get("num_workers") is not None:
        items.append(f"data.loader.num_workers={spec['num_workers']}")
    if spec["kind"] == "fit":
        items += [f"trainer.precision={spec['precision']}", "trainer.limit_val_batches=0",
                  f"++trainer.max_steps={spec['warmup_steps'] + spec['measure_steps']}",
                  "trainer.log_every_n_steps=50"]
    return items


def compose_cfg(spec: dict[str, Any], output_dir: str) -> Any:
    from hydra import compose, initialize_config_dir

    from yolotl.api import config_dir

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose(config_name="train", overrides=[*overrides(spec), f"paths.output_dir={output_dir}"])


class UtilSampler:
    """GPU utilisation (%) sampled in a background thread: pynvml when installed, else nvidia-smi."""

    def __init__(self, enabled: bool) -> None:
        self.samples: list[float] = []
        self.source = "n/a"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._read = None
        if not enabled:
            return
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(0)
            self._read = lambda: float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            self.source, self._period = "pynvml", 0.1
        except Exception:  # noqa: BLE001 - not installed, or no NVML: try nvidia-smi
            try:
                self._smi()
                self._read, self.source, self._period = self._smi, "nvidia-smi", 0.2
            except Exception:  # noqa: BLE001 - no nvidia-smi either: report n/a
                self._read = None

    @staticmethod
    def _smi() -> float:
        out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=5, check=True).stdout
        return float(out.split()[0])

    def start(self) -> None:
        if self._read is None:
            return

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self.samples.append(self._read())
                except Exception:  # noqa: BLE001 - a failed read is a missing sample
                    pass
                self._stop.wait(self._period)

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=6)


def loader_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Images/s of BCCD's training DataLoader alone, after its first batch (worker start excluded)."""
    import lightning.pytorch as pl
    from hydra.utils import instantiate

    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose_cfg(spec, tmp)
        pl.seed_everything(cfg.seed, verbose=False)
        start = time.perf_counter()
        dm = instantiate(cfg.data, _convert_="all")
        dm.prepare_data()
        dm.setup("fit")
        setup_s = time.perf_counter() - start
        start = time.perf_counter()
        loader = dm.train_dataloader()  # fills the RAM cache
        fill_s = time.perf_counter() - start
        start = time.perf_counter()
        epoch, iterator = 0, iter(loader)
        next(iterator)
        first_s = time.perf_counter() - start
        images, batches, start = 0, 0, time.perf_counter()
        while batches < spec["loader_batches"]:
            try:
                batch = next(iterator)
            except StopIteration:
                epoch += 1
                loader.sampler.set_epoch(epoch)
                iterator = iter(loader)
                continue
            images += len(batch[0])
            batches += 1
        seconds = time.perf_counter() - start
        return {"images_per_s": images / seconds, "images": images, "batches": batches, "epochs_crossed": epoch,
                "seconds": seconds, "num_workers": dm.num_workers, "setup_s": setup_s, "cache_fill_s": fill_s,
                "first_batch_s": first_s, "train_images": len(dm.split("train").records),
                "batches_per_epoch": len(loader), "pin_memory": dm.pin_memory, "cache": cfg.data.loader.cache,
                "mosaic": cfg.data.augment.mosaic, "overrides": overrides(spec)}


def fit_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """A short real fit: warm-up steps, then timed steps (images/s, data wait, GPU util, peak memory)."""
    import lightning.pytorch as pl
    import torch
    from hydra.utils import instantiate

    from yolotl.api import build
    from yolotl.api.trainer import build_trainer

    cuda = torch.cuda.is_available() and spec["gpu"]
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    class StepTimer(pl.Callback):
        """Times every step (synchronised at its end); compiles the detector when the fit starts."""

        def __init__(self) -> None:
            self.n = 0
            self.t_fit = self.t_train = self.t_start = self.prev_end = 0.0
            self.first_step_s = self.warmup_s = None
            self.window: tuple[float, float] | None = None
            self.t0 = 0.0
            self.step_s: list[float] = []
            self.wait_s: list[float] = []
            self.images = 0
            self.sampler = UtilSampler(cuda)

        def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            if spec["compile"]:
                pl_module.detector.compile(backend=spec["compile_backend"])  # in place: names, EMA copy unchanged
            if cuda:
                torch.cuda.reset_peak_memory_stats()

        def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            self.t_train = time.perf_counter()

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
            self.t_start = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
            sync()
            now = time.perf_counter()
            self.n += 1
            if self.n == 1:
                self.first_step_s = now - self.t_train
            if self.n > spec["warmup_steps"]:
                self.step_s.append(now - self.t_start)
                self.wait_s.append(self.t_start - self.prev_end)
                self.images += len(batch[0])
            if self.n == spec["warmup_steps"]:
                self.warmup_s = now - self.t_fit
                self.t0 = now
                self.sampler.start()
            if self.n == spec["warmup_steps"] + spec["measure_steps"]:
                self.window = (self.t0, now)
                self.sampler.stop()
            self.prev_end = time.perf_counter()

    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose_cfg(spec, tmp)
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
        start = time.perf_counter()
        datamodule, module, strategy = build(cfg)
        build_s = time.perf_counter() - start
        timer = StepTimer()
        callbacks = [instantiate(cfg.callbacks.ema), timer]  # EMA as in a yolotl-train run; the timer last
        # yolotl-train's Trainer (bf16 becomes 16-mixed on a GPU without bfloat16), with its output off
        trainer = build_trainer(cfg, tmp, callbacks, logger=False, enable_checkpointing=False,
                                enable_progress_bar=False, enable_model_summary=False)
        precision = str(trainer.precision)
        timer.t_fit = time.perf_counter()
        trainer.fit(module, datamodule=datamodule)
        timer.sampler.stop()
    if timer.window is None:
        raise RuntimeError(f"the fit ended after {timer.n} steps, before {spec['warmup_steps']} + "
                           f"{spec['measure_steps']} (max_steps {trainer.max_steps})")
    seconds = timer.window[1] - timer.window[0]
    samples = timer.sampler.samples
    result: dict[str, Any] = {
        "images_per_s": timer.images / seconds,
        "step_images_per_s": timer.images / sum(timer.step_s),
        "wait_share": sum(timer.wait_s) / seconds,
        "images": timer.images,
        "seconds": seconds,
        "steps": len(timer.step_s),
        "median_step_ms": 1000 * sorted(timer.step_s)[len(timer.step_s) // 2],
        "warmup_s": timer.warmup_s,
        "first_step_s": timer.first_step_s,
        "build_s": build_s,
        "gpu_util_mean": sum(samples) / len(samples) if samples else None,
        "gpu_util_max": max(samples) if samples else None,
        "gpu_util_samples": samples,
        "gpu_util_source": timer.sampler.source,
        "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
        "peak_reserved_gib": torch.cuda.max_memory_reserved() / 2**30 if cuda else None,
        "precision": precision,
        "compile": spec["compile"],
        "compile_backend": spec["compile_backend"] if spec["compile"] else None,
        "num_workers": datamodule.num_workers,
        "strategy": strategy.name,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "overrides": overrides(spec),
    }
    if spec["compile"]:
        from torch._dynamo.utils import counters

        result["graph_breaks"] = sum(counters["graph_break"].values())
        result["unique_graphs"] = counters["stats"].get("unique_graphs")
    return result


def run_worker(raw: str) -> None:
    """Inside the subprocess: run one phase B / C measurement and print its result on a marked line."""
    spec = json.loads(raw)
    result = loader_worker(spec) if spec["kind"] == "loader" else fit_worker(spec)
    print(RESULT_MARK + json.dumps(result, default=str), flush=True)


def _workers(count: int) -> str:
    return f"{count} loader worker{'' if count == 1 else 's'}"


def phase_loader(spec: dict[str, Any], cap_s: float, label: str) -> dict[str, Any]:
    progress(f"phase B: data loader, {label} ({cap_s:.0f} s cap)")
    run = run_child(worker_cmd(spec), cap_s, f"phase B loader {label}")
    res = run.result()
    setting = f"train loader alone, {label}, {spec['image_size']} px, batch {spec['batch_size']}"
    if res is None:
        cells = ["B loader", setting, "—", "—", "—", "—", "—", "—", f"FAILED: {run.error()}"]
        return {"phase": "B", "cells": cells, "error": run.error(), "seconds": round(run.seconds, 1)}
    setting = setting.replace(label, f"{_workers(res['num_workers'])} ({label})")
    notes = (f"{res['batches']} batches after the first (first {res['first_batch_s']:.1f} s); "
             f"{res['train_images']} train images, {res['batches_per_epoch']} batches per epoch; "
             f"mosaic {res['mosaic']}, cache {res['cache']}, pin_memory {res['pin_memory']}")
    cells = ["B loader", setting, fmt(res["images_per_s"]), "—", "—", "—", "—",
             f"{res['cache_fill_s'] + res['first_batch_s']:.1f}",
             f"{notes}; RAM cache fill {res['cache_fill_s']:.1f} s"]
    return {"phase": "B", "cells": cells, "result": res, "seconds": round(run.seconds, 1)}


def phase_fit(spec: dict[str, Any], cap_s: float) -> dict[str, Any]:
    compile_text = f"compile on ({spec['compile_backend']})" if spec["compile"] else "compile off"
    label = f"{spec['precision']}, {compile_text}"
    progress(f"phase C: fit {label} ({cap_s:.0f} s cap)")
    run = run_child(worker_cmd(spec), cap_s, f"phase C fit {label}")
    res = run.result()
    setting = f"BCCD fit, {label}"
    if res is None:
        cells = ["C fit", setting, "—", "—", "—", "—", "—", "—", f"FAILED: {run.error()}"]
        return {"phase": "C", "cells": cells, "error": run.error(), "seconds": round(run.seconds, 1)}
    if res["precision"] != spec["precision"]:
        setting = f"BCCD fit, {res['precision']} (asked {spec['precision']}), {compile_text}"
    util = "n/a" if res["gpu_util_mean"] is None else f"{res['gpu_util_mean']:.0f} (max {res['gpu_util_max']:.0f})"
    mem = "n/a" if res["peak_mem_gib"] is None else f"{res['peak_mem_gib']:.2f}"
    notes = (f"{res['steps']} steps after {spec['warmup_steps']} warm-up, median step {res['median_step_ms']:.1f} ms; "
             f"first step {res['first_step_s']:.1f} s; {_workers(res['num_workers'])}")
    if spec["compile"]:
        notes += f"; graph breaks {res.get('graph_breaks')}"
    cells = ["C fit", setting, fmt(res["images_per_s"]), fmt(res["step_images_per_s"]),
             f"{100 * res['wait_share']:.0f}%", util, mem, fmt(res["warmup_s"]), notes]
    return {"phase": "C", "cells": cells, "result": res, "seconds": round(run.seconds, 1)}


# ---- main --------------------------------------------------------------------------------------


def find_data_root(arg: str | None) -> Path | None:
    """BCCD: --data-root, else $YOLOTL_SHARED_DATASETS/bccd, shared/datasets/bccd in or beside the checkout."""
    candidates = [Path(arg)] if arg else [
        *([Path(os.environ["YOLOTL_SHARED_DATASETS"]) / "bccd"] if os.environ.get("YOLOTL_SHARED_DATASETS") else []),
        REPO / "shared" / "datasets" / "bccd",
        REPO.parent / "shared" / "datasets" / "bccd",
    ]
    for path in candidates:
        if (path / "Annotations").is_dir():
            return path.resolve()
    return None


def environment(args: argparse.Namespace, plan: Plan, data_root: Path | None) -> tuple[dict[str, Any], list[str]]:
    from importlib import metadata

    import torch

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "?"

    sys.path.insert(0, str(REPO / "src"))
    from yolotl._version import __version__ as yolotl_version

    cuda = torch.cuda.is_available()
    info: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "host": platform.node(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "lightning": version("lightning"),
        "timm": version("timm"),
        "yolotl": yolotl_version,
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "gpu_memory_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1) if cuda else None,
        "bf16_supported": torch.cuda.is_bf16_supported() if cuda else None,
        "driver": _driver() if cuda else None,
        "cpu_cores": os.cpu_count(),
        "data_root": str(data_root) if data_root else None,
        "dry_run": args.dry_run,
        "budget_s": args.budget_s,
        "plan": plan.__dict__,
    }
    gpu = f"{info['gpu']}, {info['gpu_memory_gib']} GiB, driver {info['driver']}" if cuda else "none (CPU run)"
    lines = [
        "## yolotl on the GPU: tests, BCCD loader ceiling, fit throughput"
        + (" (DRY RUN on the CPU)" if args.dry_run else ""),
        "",
        f"- date {info['date']}; command `{info['command']}`",
        f"- torch {info['torch']} (CUDA {info['cuda']}, cuDNN {info['cudnn']}), Lightning {info['lightning']}, "
        f"timm {info['timm']}, yolotl {info['yolotl']}, Python {info['python']}",
        f"- GPU: {gpu}; {info['cpu_cores']} CPU cores",
        f"- data: BCCD at `{info['data_root']}`: `yolotl-train experiment=bccd` at {plan.image_size} px, batch "
        f"{plan.batch_size}; fits: {plan.warmup_steps} warm-up + {plan.measure_steps} timed steps",
    ]
    return info, lines


def _driver() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        return out.splitlines()[0] if out else None
    except (OSError, subprocess.SubprocessError):
        return None


def table_notes(plan: Plan) -> list[str]:
    notes = [
        "images/s: the fit's timed steps including the wait for each batch (the data loader's workers, "
        "the host-to-device copy, Lightning's loop); step-only images/s leaves the time between batches out; "
        "waiting for data is that time's share.",
        "Fits: `experiment=bccd trainer=gpu trainer.precision=<p>` composed with Hydra, built with "
        "`yolotl.api.build(cfg)` (finetune, efficientnet_lite0, offline ImageNet weights), the Trainer from "
        "`yolotl.api.trainer.build_trainer` as in yolotl-train, with the EMA callback; validation, checkpoints and "
        "logging off. One "
        "`torch.cuda.synchronize()` per step for its timing.",
        "torch.compile: yolotl has no option for it; the script calls `module.detector.compile()` "
        f"(backend {plan.compile_backend!r}, default mode; the loss and assigner stay eager). Its compile time is "
        "in warm-up s and first step (against the eager row); the second compiled fit may reuse inductor's "
        "on-disk cache of the first.",
        "32-true runs with torch's defaults (cuDNN convolutions may use TF32; float32 matmul precision "
        "'highest').",
        "GPU util %: mean (max) of pynvml or nvidia-smi samples over the timed steps; peak GPU mem: "
        "`torch.cuda.max_memory_allocated()` over the whole fit, one process per row.",
        "The loader row is the ceiling of the training data pipeline with no model (same config, workers, "
        "augmentation, RAM cache); a fit whose images/s sits near it waits for data.",
    ]
    if not plan.gpu:
        notes.append("DRY RUN on the CPU: tiny sizes, no GPU figures (n/a), phase A capped at 60 s, compile with "
                     "backend='eager' (inductor's CPU compile did not finish one step in 5 minutes on 2 cores).")
    return notes


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true",
                        help="the CPU check: batch 2, 128 px, a few steps, no GPU figures, tests capped at 60 s")
    parser.add_argument("--budget-s", type=float, default=540.0, help="global deadline in seconds (default 540)")
    parser.add_argument("--tests", action=argparse.BooleanOptionalAction, default=True, help="phase A (default on)")
    parser.add_argument("--pytest-args", help="replace phase A's test list (one shell-quoted string)")
    parser.add_argument("--data-root", help="BCCD (VOC) folder (default: $YOLOTL_SHARED_DATASETS/bccd, "
                                            "shared/datasets/bccd in or beside the checkout)")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"phase C fits, precision:compile, in order (default {','.join(VARIANTS)}; '' for none)")
    parser.add_argument("--workers", type=int, help="data.loader.num_workers for B and C (default: the config's auto)")
    parser.add_argument("--no-loader", dest="loader", action="store_false", help="skip phase B")
    parser.add_argument("--image-size", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--warmup-steps", type=int)
    parser.add_argument("--measure-steps", type=int)
    parser.add_argument("--loader-batches", type=int)
    parser.add_argument("--compile-backend", help="torch.compile backend (default inductor; eager in --dry-run)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    if args.worker:
        run_worker(args.worker)
        return
    start = time.monotonic()
    if args.dry_run and args.budget_s == 540.0:
        args.budget_s = 600.0  # the 2-core CPU is slower than the whole GPU run
    deadline = start + args.budget_s
    plan = make_plan(args)
    data_root = find_data_root(args.data_root)
    header, header_lines = environment(args, plan, data_root)
    report = Report(header, header_lines, table_notes(plan))

    def cap(phase_cap: float, minimum: float = 20.0) -> float | None:
        left = deadline - time.monotonic() - 5.0
        return min(phase_cap, left) if left >= minimum else None

    def skipped(phase: str, setting: str, why: str) -> None:
        report.add({"phase": phase[0], "cells": [phase, setting, "—", "—", "—", "—", "—", "—", why],
                    "skipped": why})

    if args.tests:
        if (c := cap(plan.tests_cap_s)) is None:
            skipped("A tests", "pytest on CUDA", "skipped: out of time")
        else:
            report.add(phase_tests(args, plan, c))

    base = {"gpu": plan.gpu, "data_root": str(data_root), "image_size": plan.image_size,
            "batch_size": plan.batch_size, "num_workers": args.workers}
    if data_root is None:
        skipped("B loader", "train loader alone", "skipped: BCCD not found (pass --data-root)")
        skipped("C fit", "BCCD fits", "skipped: BCCD not found (pass --data-root)")
    else:
        if args.loader:
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
            more = min(12, max(1, cores - 1)) if plan.gpu else 2  # dry run: any second count, for the code path
            counts: list[tuple[int | None, str]] = [(args.workers, "config" if args.workers is None else "--workers")]
            counts.append((more, "one per spare core" if plan.gpu else "dry-run second count"))
            seen: set[int | None] = set()
            for workers, label in counts:
                if workers in seen:
                    continue
                seen.add(workers)
                if (c := cap(plan.loader_cap_s)) is None:
                    skipped("B loader", f"train loader alone, {label}", "skipped: out of time")
                    continue
                report.add(phase_loader({**base, "kind": "loader", "num_workers": workers,
                                         "loader_batches": plan.loader_batches}, c, label))
        for variant in [v for v in args.variants.split(",") if v]:
            precision, _, compiled = variant.partition(":")
            compiled_on = compiled.strip().lower() in ("on", "1", "true", "yes")
            spec = {**base, "kind": "fit", "precision": precision.strip(), "compile": compiled_on,
                    "compile_backend": plan.compile_backend, "warmup_steps": plan.warmup_steps,
                    "measure_steps": plan.measure_steps}
            if (c := cap(plan.compile_cap_s if compiled_on else plan.eager_cap_s, minimum=30.0)) is None:
                skipped("C fit", f"BCCD fit, {precision}, compile {'on' if compiled_on else 'off'}",
                        "skipped: out of time")
                continue
            report.add(phase_fit(spec, c))

    total = time.monotonic() - start
    report.header["total_s"] = round(total, 1)
    report.save()
    progress(f"done in {total:.0f} s; results in {report.folder.resolve()}/gpu_bench.json")
    print("\n" + report.markdown(), flush=True)


if __name__ == "__main__":
    main()
