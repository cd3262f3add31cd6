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
then with ``--reference`` YOLOv8n and YOLO26n (bench/reference_models.py: YOLOv8n's training speed from
``../shared/tools/yolov8n_reference.sh``, both models' graphs exported by Ultralytics' own command line in
that tool's scratch environment; Ultralytics is never imported here; random-init models, which time like
trained ones), and each yolotl cell's ratio to them (the time, or the images/s, divided by theirs). Every
graph, yolotl's and the reference's, is timed in this process with the same ONNX Runtime and OpenVINO
settings, the models taking turns in each cell. An INT8 row's ratio is to the other model's INT8 in the
same runtime; the "best INT8" rows compare each model's fastest INT8 of any runtime. Run it on a quiet
machine (no other job: the same command runs 2x slower when another shares the cores); the load average
is printed at the start, between the parts and at the end.

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
from reference_models import reference_graphs, reference_training  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BCCD = REPO.parent / "shared" / "datasets" / "bccd"
CLASSES = ["RBC", "WBC", "Platelets"]
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


def detector_of(settings: dict) -> torch.nn.Module:
    """The timed yolotl model: efficientnet_lite0 with its offline ImageNet weights and ``settings``."""
    import yolotl

    return yolotl.create_detector("efficientnet_lite0", class_names=CLASSES, pretrained="offline", **settings).eval()


def yolotl_graphs(detector: torch.nn.Module, sizes: list[int], images: list[Path],
                  work: Path) -> dict[tuple[str, int], Path]:
    """``{(runtime, size): graph}`` of ``detector``."""
    return {(runtime, size): path for size in sizes
            for runtime, path in exported_models(detector, size, images, work).items()}


def pytorch_ms(detector: torch.nn.Module, sizes: list[int], threads: list[int],
               runs: int) -> dict[tuple[str, int, int], float]:
    """PyTorch eager latency of ``detector`` (no reference: Ultralytics runs in its own environment)."""
    out = {}
    for size in sizes:
        x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
        for count in threads:
            torch.set_num_threads(count)
            with torch.inference_mode():
                out["PyTorch", size, count] = median_ms(lambda: detector(x), 5, runs)
    return out


def graph_runner(path: Path, threads: int) -> Callable[[np.ndarray], object]:
    """One forward pass of an exported graph (yolotl's or a reference's), with the settings yolotl's runtimes
    use: ONNX Runtime's CPU provider with ``threads`` intra-op threads; OpenVINO's CPU plugin with
    ``PERFORMANCE_HINT=LATENCY``, ``INFERENCE_PRECISION_HINT=f32`` (no silent bf16 on CPUs that have it) and
    ``INFERENCE_NUM_THREADS``, as :class:`yolotl.OpenVinoDetector` compiles."""
    if path.suffix == ".onnx":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda x: session.run(None, {name: x})
    import openvino as ov

    compiled = ov.Core().compile_model(str(path), "CPU", {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32",
                                                          "INFERENCE_NUM_THREADS": threads})
    request = compiled.create_infer_request()
    return lambda x: request.infer({0: x})


def time_graphs(graphs: dict[str, dict[tuple[str, int], Path]], threads: list[int],
                runs: int) -> dict[str, dict[tuple[str, int, int], float]]:
    """``{model: {(runtime, size, threads): median ms}}``: within each size, thread count and runtime the models
    take turns, so a drift in the machine's speed hits them alike."""
    out: dict[str, dict[tuple[str, int, int], float]] = {model: {} for model in graphs}
    cells = sorted({key for per_model in graphs.values() for key in per_model}, key=lambda k: (k[1], k[0]))
    for runtime, size in cells:
        x = np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)
        for count in threads:
            for model, per_model in graphs.items():
                if (runtime, size) in per_model:
                    run = graph_runner(per_model[runtime, size], count)
                    out[model][runtime, size, count] = median_ms(lambda r=run: r(x), 5, runs)
    return out


def _ratio(value: float, base: float | None) -> str:
    return f"{value / base:.2f}x" if base else "–"


def _cell(value: float | None, bases: list[float | None], digits: int = 1) -> str:
    if value is None:
        return "–"
    ratios = " / ".join(_ratio(value, b) for b in bases)
    return f"{value:.{digits}f}" + (f" ({ratios})" if any(bases) else "")


def print_table(variants: list[str], train: dict, latency: dict, refs: tuple[str, ...], base_train: float | None) -> None:
    """One markdown table: a column per yolotl variant, then the reference models (``latency`` holds both,
    by variant string or reference name)."""
    names = [v or "default" for v in variants]
    print(f"\n| measure | {' | '.join(f'yolotl {n}' for n in names)}{''.join(f' | {m}' for m in refs)} |")
    print("|---|" + "---|" * (len(variants) + len(refs)))
    if refs:
        print(f"| (in brackets: yolotl's figure divided by {' / '.join(refs)}'s) |" + " |" * (len(variants) + len(refs)))
    for strategy in STRATEGIES:
        if not any((v, strategy) in train for v in variants):
            continue
        bases = [base_train] if refs and base_train else []
        cells = [_cell(train.get((v, strategy)), bases, 2) for v in variants]
        extra = ([f"{base_train:.2f}" if base_train else "–"] + ["–"] * (len(refs) - 1)) if refs else []
        print(f"| train images/s, {strategy} (BCCD 416 px, batch 16) | {' | '.join(cells + extra)} |")
    keys = sorted({k[1:] for v in variants for k in latency.get(v, {})})
    for size, threads in keys:
        plural = "s" if threads > 1 else ""
        for runtime in RUNTIMES:
            theirs = [latency.get(m, {}).get((runtime, size, threads)) for m in refs]
            cells = [_cell(latency.get(v, {}).get((runtime, size, threads)), theirs) for v in variants]
            if all(c == "–" for c in cells):
                continue
            extra = [f"{t:.1f}" if t else "–" for t in theirs]
            print(f"| {runtime}, {size} px, {threads} thread{plural}, ms | {' | '.join(cells + extra)} |")

        def best_int8(model: str) -> float | None:
            return min((ms for (rt, s, t), ms in latency.get(model, {}).items() if "INT8" in rt and (s, t) == (size, threads)),
                       default=None)

        best, theirs = [best_int8(v) for v in variants], [best_int8(m) for m in refs]
        if any(b is not None for b in best):
            label = f"best INT8 of any runtime, {size} px, {threads} thread{plural}, ms"
            print(f"| {label} | {' | '.join([_cell(b, theirs) for b in best] + [f'{t:.1f}' if t else '–' for t in theirs])} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", action="store_true", help="YOLOv8n and YOLO26n beside yolotl")
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

    refs = REFERENCE_MODELS if args.reference else ()
    base_train = None
    print(f"load average {os.getloadavg()[0]:.2f} at the start", flush=True)
    if args.reference and not args.skip_train:
        base_train, table = reference_training(BCCD)
        print(f"{table}\n# reference training done, load {os.getloadavg()[0]:.2f}", flush=True)
    train: dict[tuple[str, str], float] = {}
    latency: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="yolotl-speed-") as tmp:
        graphs: dict[str, dict] = {}
        images = calibration_images(args.calibration)
        if args.reference and not args.skip_latency:
            graphs |= reference_graphs(args.sizes, images, Path(tmp) / "reference", CLASSES)
        for index, variant in enumerate(args.variants):
            settings = parse_variant(variant)
            model_overrides = [f"model.detector.{k}={v}" for k, v in settings.items()]
            if not args.skip_train:
                for strategy in args.strategies:
                    train[variant, strategy] = train_images_per_s(strategy, args.epochs, BCCD, Path(tmp),
                                                                  model_overrides + args.train_override)
                    print(f"# {variant or 'default'} {strategy}: {train[variant, strategy]:.2f} images/s, load "
                          f"{os.getloadavg()[0]:.2f}", flush=True)
            if not args.skip_latency:
                work = Path(tmp) / f"latency-{index}"
                work.mkdir()
                detector = detector_of(settings)
                graphs[variant] = yolotl_graphs(detector, args.sizes, images, work)
                latency[variant] = pytorch_ms(detector, args.sizes, args.threads, args.runs)
        if graphs:
            print(f"# timing every graph, load {os.getloadavg()[0]:.2f}", flush=True)
            for model, times in time_graphs(graphs, args.threads, args.runs).items():
                latency.setdefault(model, {}).update(times)
    print_table(args.variants, train, latency, refs, base_train)
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
