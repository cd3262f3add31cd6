"""Benchmark: yolotl's CPU speed beside YOLOv8n's and YOLO26n's, measured in one window, in one table.

Rows:

- training images/s per strategy (``feature_extract``, ``finetune``, ``end_to_end``): BCCD, 416 px,
  batch 16, efficientnet_lite0 with its offline ImageNet weights, whole epochs with data loading and
  without validation (``images_per_s`` of ``yolotl-train``'s metrics.json, one process per strategy);
  YOLOv8n's is its first epoch under the same settings;
- model-only latency, batch 1, median of ``--runs`` after 5 warm-ups, per runtime (PyTorch; ONNX Runtime
  FP32 and static INT8 calibrated on BCCD training images; OpenVINO FP32 and NNCF INT8 on the same images
  when openvino is installed), size (320, 640) and intra-op threads (1, 2; OpenVINO:
  ``INFERENCE_NUM_THREADS`` with ``PERFORMANCE_HINT=LATENCY``). Every graph is exported with a fixed
  input size (``dynamic=False``), as the reference exports YOLOv8n and YOLO26n, and holds the network and
  its box decoding, no letterbox, no NMS (YOLO26n's graph includes its one-to-one top-k selection).

Columns: yolotl, one per ``--variants`` entry (``create_detector`` settings; ``""`` is the default model),
then with ``--reference`` YOLOv8n and YOLO26n from ``../shared/tools/yolov8n_reference.sh`` (Ultralytics
in its own scratch environment: it is never imported here; random-init models, which time like trained
ones), and each yolotl cell's ratio to them (the time, or the images/s, divided by theirs). An INT8 row's
ratio is to the other model's INT8 in the same runtime; the "best INT8" rows compare each model's fastest
INT8 of any runtime. Run it on a quiet machine (no other job: the same command runs 2x slower when another
shares the cores); the load average is printed at the start and the end of each part.

    python bench/speed.py --reference                                       # the whole protocol, ~25 min
    python bench/speed.py --reference --variants "" "neck=light head=light" # a candidate beside the default
    python bench/speed.py --skip-train --sizes 640                          # latency only
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from head_options import parse_variant  # noqa: E402  (bench/ is not a package)

REPO = Path(__file__).resolve().parents[1]
BCCD = REPO.parent / "shared" / "datasets" / "bccd"
REFERENCE = REPO.parent / "shared" / "tools" / "yolov8n_reference.sh"
STRATEGIES = ("feature_extract", "finetune", "end_to_end")
RUNTIMES = ("PyTorch", "ONNX Runtime FP32", "ONNX Runtime INT8", "OpenVINO FP32", "OpenVINO INT8")
REFERENCE_MODELS = ("YOLOv8n", "YOLO26n")


def train_images_per_s(strategy: str, epochs: int, root: Path, work: Path, overrides: list[str]) -> float:
    """One ``yolotl-train`` process: ``epochs`` epochs of BCCD training, no validation or test."""
    out = work / f"{strategy}-{abs(hash(tuple(overrides)))}"
    command = [
        sys.executable, "-m", "yolotl.cli.train", "data=voc", f"data.root={root}",
        "data.reading.class_names=[RBC,WBC,Platelets]", f"strategy={strategy}", "data.image_size=416",
        "data.batch_size=16", "recipe=fixed",
        f"trainer.max_epochs={epochs}", "trainer.limit_val_batches=0", "test_after_fit=false", "logger=csv",
        f"hydra.run.dir={out}", f"data.checks.health_cache={work / 'health'}", *overrides,
    ]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"yolotl-train ({strategy}) failed:\n{done.stderr[-3000:]}")
    return float(json.loads((out / "metrics.json").read_text())["images_per_s"])


def median_ms(run: Callable[[], object], warmup: int, runs: int) -> float:
    for _ in range(warmup):
        run()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def calibration_images(count: int) -> list[Path]:
    """``count`` BCCD training images, spread over the split (the INT8 calibration set of every model)."""
    train = set((BCCD / "ImageSets" / "Main" / "train.txt").read_text().split())
    images = [p for p in sorted((BCCD / "JPEGImages").glob("*.jpg")) if p.stem in train]
    return images[:: max(1, len(images) // count)][:count]


def exported_models(detector: torch.nn.Module, size: int, images: list[Path], work: Path) -> dict[str, Path]:
    """The detector at a fixed ``size``: ONNX FP32 and INT8, and OpenVINO FP32 and INT8 when installed."""
    from yolotl.inference import export_onnx, quantize_onnx

    detector.config.image_size = size  # the exported graph's fixed input and the calibration letterbox
    fp32 = export_onnx(detector, work / f"fp32_{size}.onnx", dynamic=False)
    models = {"ONNX Runtime FP32": fp32, "ONNX Runtime INT8": quantize_onnx(fp32, images, work / f"int8_{size}.onnx")}
    try:
        import nncf  # noqa: F401
        import openvino  # noqa: F401
    except ImportError:
        print("# no OpenVINO rows: pip install \"yolotl[openvino]\"", flush=True)
        return models
    from yolotl.inference import export_openvino, quantize_openvino

    ov32 = export_openvino(detector, work / f"fp32_{size}.xml", dynamic=False)
    return models | {"OpenVINO FP32": ov32, "OpenVINO INT8": quantize_openvino(ov32, images, work / f"int8_{size}.xml")}


def latencies(settings: dict, sizes: list[int], threads: list[int], runs: int, calibration: int,
              work: Path) -> dict[tuple[str, int, int], float]:
    """``{(runtime, size, threads): median ms}`` of the detector built with ``settings``."""
    import yolotl
    from yolotl.inference import OnnxDetector, OpenVinoDetector

    detector = yolotl.create_detector("efficientnet_lite0", class_names=["RBC", "WBC", "Platelets"],
                                      pretrained="offline", **settings).eval()
    images = calibration_images(calibration)
    out = {}
    for size in sizes:
        models = exported_models(detector, size, images, work)
        x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
        for count in threads:
            torch.set_num_threads(count)
            with torch.inference_mode():
                out["PyTorch", size, count] = median_ms(lambda: detector(x), 5, runs)
            for name, path in models.items():
                runner = (OnnxDetector(path, ["CPUExecutionProvider"], count) if path.suffix == ".onnx"
                          else OpenVinoDetector(path, threads=count))
                out[name, size, count] = median_ms(lambda r=runner: r.boxes_and_scores(x), 5, runs)
    return out


def reference() -> dict:
    """The reference tool's figures: ``{"train_images_per_s", "latency_ms": {model: {"runtime|size|threads": ms}},
    "load_start", "load_end"}``."""
    done = subprocess.run(["bash", str(REFERENCE), str(BCCD)], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{REFERENCE} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("REFERENCE ")]
    if not lines:
        raise SystemExit(f"{REFERENCE} printed no REFERENCE line:\n{done.stdout[-2000:]}")
    print("\n".join(line for line in done.stdout.splitlines() if line.startswith("|")), flush=True)
    return json.loads(lines[-1][len("REFERENCE "):])


def _ratio(value: float, base: float | None) -> str:
    return f"{value / base:.2f}x" if base else "–"


def _cell(value: float | None, bases: list[float | None], digits: int = 1) -> str:
    if value is None:
        return "–"
    ratios = " / ".join(_ratio(value, b) for b in bases)
    return f"{value:.{digits}f}" + (f" ({ratios})" if any(bases) else "")


def print_table(variants: list[str], train: dict, latency: dict, ref: dict) -> None:
    refs = REFERENCE_MODELS if ref else ()
    names = [v or "default" for v in variants]
    print(f"\n| measure | {' | '.join(f'yolotl {n}' for n in names)}{''.join(f' | {m}' for m in refs)} |")
    print("|---|" + "---|" * (len(variants) + len(refs)))
    if refs:
        print(f"| (in brackets: yolotl's figure divided by {' / '.join(refs)}'s) |" + " |" * (len(variants) + len(refs)))
    base_train = ref.get("train_images_per_s")
    for strategy in STRATEGIES:
        if not any((v, strategy) in train for v in variants):
            continue
        cells = [_cell(train.get((v, strategy)), [base_train] if refs else [], 2) for v in variants]
        extra = [f"{base_train:.2f}", "–"] if refs else []
        print(f"| train images/s, {strategy} (BCCD 416 px, batch 16) | {' | '.join(cells + extra)} |")
    reference_ms = ref.get("latency_ms", {})
    keys = sorted({k[1:] for v in variants for k in latency.get(v, {})})
    for size, threads in keys:
        for runtime in RUNTIMES:
            key = f"{runtime}|{size}|{threads}"
            theirs = [reference_ms.get(m, {}).get(key) for m in refs]
            cells = [_cell(latency.get(v, {}).get((runtime, size, threads)), theirs) for v in variants]
            if all(c == "–" for c in cells):
                continue
            extra = [f"{t:.1f}" if t else "–" for t in theirs]
            label = f"{runtime}, {size} px, {threads} thread{'s' if threads > 1 else ''}, ms"
            print(f"| {label} | {' | '.join(cells + extra)} |")
        best = [min((ms for (rt, s, t), ms in latency.get(v, {}).items() if "INT8" in rt and (s, t) == (size, threads)),
                    default=None) for v in variants]
        theirs = [min((ms for k, ms in reference_ms.get(m, {}).items() if "INT8" in k and k.endswith(f"|{size}|{threads}")),
                      default=None) for m in refs]
        if any(b is not None for b in best):
            label = f"best INT8 of any runtime, {size} px, {threads} thread{'s' if threads > 1 else ''}, ms"
            print(f"| {label} | {' | '.join([_cell(b, theirs) for b in best] + [f'{t:.1f}' if t else '–' for t in theirs])} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", action="store_true", help="run the YOLOv8n / YOLO26n reference first")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--variants", nargs="+", default=[""], metavar="SETTINGS",
                        help="yolotl models to time, as create_detector settings ('' is the default model), "
                             "e.g. '' 'neck=light head=light'")
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    parser.add_argument("--epochs", type=int, default=2, help="training epochs per strategy")
    parser.add_argument("--sizes", nargs="+", type=int, default=[320, 640])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--runs", type=int, default=30, help="timed runs per latency cell")
    parser.add_argument("--calibration", type=int, default=64, help="INT8 calibration images")
    parser.add_argument("--train-override", nargs="*", default=[], metavar="KEY=VALUE",
                        help="more yolotl-train overrides, e.g. trainer.precision=bf16-mixed")
    args = parser.parse_args()

    ref = reference() if args.reference else {}
    print(f"\nyolotl: load average {os.getloadavg()[0]:.2f} at the start", flush=True)
    train: dict[tuple[str, str], float] = {}
    latency: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="yolotl-speed-") as tmp:
        for variant in args.variants:
            settings = parse_variant(variant)
            model_overrides = [f"model.detector.{k}={v}" for k, v in settings.items()]
            if not args.skip_train:
                for strategy in args.strategies:
                    train[variant, strategy] = train_images_per_s(strategy, args.epochs, BCCD, Path(tmp),
                                                                  model_overrides + args.train_override)
                    print(f"# {variant or 'default'} {strategy}: {train[variant, strategy]:.2f} images/s, load "
                          f"{os.getloadavg()[0]:.2f}", flush=True)
            if not args.skip_latency:
                work = Path(tmp) / f"latency-{len(latency)}"
                work.mkdir()
                latency[variant] = latencies(settings, args.sizes, args.threads, args.runs, args.calibration, work)
                print(f"# {variant or 'default'} latency done, load {os.getloadavg()[0]:.2f}", flush=True)
    print_table(args.variants, train, latency, ref)
    if ref:
        print(f"\nreference: load average {ref['load_start']:.2f} at its start, {ref['load_end']:.2f} at its end")
    print(f"yolotl: load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
