"""Benchmark: where OpenVINO's CPU time goes, layer by layer, in yolotl's graph beside YOLOv8n's and YOLO26n's.

Each IR is compiled as :class:`yolotl.OpenVinoDetector` compiles it (``PERFORMANCE_HINT=LATENCY``,
``INFERENCE_PRECISION_HINT=f32``, ``INFERENCE_NUM_THREADS``) plus ``PERF_COUNT``, run ``--runs`` times after
5 warm-ups, and OpenVINO's own per-layer counters (``real_time`` of each executed node, after its graph
fusions) are summed by:

- part: yolotl's ``backbone`` / ``neck`` / ``head`` / ``decode`` from the node names (the PyTorch module
  paths the ONNX export keeps); the reference models' nodes count as ``model`` (their names are not parts);
- kind: depthwise convolution (a group per channel), other grouped convolution, 1x1 convolution,
  larger dense convolution, and everything else by OpenVINO type;
- precision: the kernel OpenVINO chose (``exec_type``, e.g. ``jit_avx512_I8`` or ``jit_avx512_FP32``).

The sum of the counters is the time inside OpenVINO's nodes per inference (median run); the whole-call
median is printed beside it. Run it on a quiet machine::

    python bench/profile_openvino.py                          # default model, FP32 and INT8, 640 px, 1 thread
    python bench/profile_openvino.py --reference --threads 1 2
    python bench/profile_openvino.py --detector neck=light head=light --size 320
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from head_options import parse_variant  # noqa: E402  (bench/ is not a package)
from speed import CLASSES, calibration_images, detector_of, median_ms, yolotl_graphs  # noqa: E402

PARTS = ("backbone", "neck", "head")


def part_of(name: str, yolotl: bool) -> str:
    if not yolotl:
        return "model"
    for part in PARTS:
        if f"/{part}/" in name or name.startswith(f"{part}."):
            return part
    return "decode/other"


def kind_of(node, weights: dict[str, list[int]]) -> str:
    """A convolution's kind from its weight shape in the IR; any other node's OpenVINO type."""
    layer = node.node_type
    shape = weights.get(node.node_name)
    if layer not in ("Convolution", "GroupConvolution") or shape is None:
        return layer
    if len(shape) == 5:  # GroupConvolution: [groups, out / groups, in / groups, kh, kw]
        return "depthwise conv" if shape[1] == shape[2] == 1 else "grouped conv"
    return "1x1 conv" if shape[-2:] == [1, 1] else "dense conv kxk"


def conv_weights(model) -> dict[str, list[int]]:
    """``{friendly name: weight shape}`` of the IR's convolutions (the profile's nodes keep these names)."""
    out = {}
    for op in model.get_ordered_ops():
        if op.get_type_name() in ("Convolution", "GroupConvolution") and op.input(1).get_partial_shape().is_static:
            out[op.get_friendly_name()] = list(op.input(1).get_partial_shape().to_shape())
    return out


def profile(path: Path, threads: int, size: int, runs: int, yolotl: bool) -> tuple[dict, float]:
    """``({(part, kind, exec_type): ms per inference}, whole-call median ms)``."""
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(path))
    weights = conv_weights(model)
    compiled = core.compile_model(model, "CPU", {
        "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads,
        "PERF_COUNT": True})
    request = compiled.create_infer_request()
    x = np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)
    whole = median_ms(lambda: request.infer({0: x}), 5, runs)
    per_run: list[dict] = []
    for _ in range(runs):
        request.infer({0: x})
        sums: dict[tuple[str, str, str], float] = defaultdict(float)
        for node in request.profiling_info:
            if node.status.name != "EXECUTED":
                continue
            sums[part_of(node.node_name, yolotl), kind_of(node, weights), node.exec_type] += (
                node.real_time.total_seconds() * 1000)
        per_run.append(sums)
    keys = {k for run in per_run for k in run}
    return {k: float(np.median([run.get(k, 0.0) for run in per_run])) for k in keys}, whole


def print_profile(title: str, counters: dict, whole: float) -> None:
    total = sum(counters.values())
    print(f"\n### {title}: {whole:.1f} ms a call, {total:.1f} ms in OpenVINO's nodes\n")
    print("| part | kind | kernel | ms | share |\n|---|---|---|---|---|")
    for (part, kind, kernel), ms in sorted(counters.items(), key=lambda item: -item[1]):
        if ms / max(total, 1e-9) >= 0.01:
            print(f"| {part} | {kind} | {kernel} | {ms:.1f} | {100 * ms / total:.0f} % |")
    by_part: dict[str, float] = defaultdict(float)
    by_kind: dict[str, float] = defaultdict(float)
    int8 = sum(ms for (_, _, kernel), ms in counters.items() if "I8" in kernel.upper())
    for (part, kind, _), ms in counters.items():
        by_part[part] += ms
        by_kind[kind] += ms
    print("\nby part: " + ", ".join(f"{p} {ms:.1f}" for p, ms in sorted(by_part.items(), key=lambda i: -i[1])))
    print("by kind: " + ", ".join(f"{k} {ms:.1f}" for k, ms in sorted(by_kind.items(), key=lambda i: -i[1])[:8]))
    print(f"int8 kernels: {int8:.1f} ms ({100 * int8 / max(total, 1e-9):.0f} %)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=640)
    parser.add_argument("--threads", nargs="+", type=int, default=[1])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--detector", nargs="*", default=[], metavar="KEY=VALUE", help="create_detector settings")
    parser.add_argument("--reference", action="store_true", help="YOLOv8n's and YOLO26n's OpenVINO INT8 beside")
    args = parser.parse_args()

    print(f"load average {os.getloadavg()[0]:.2f} at the start", flush=True)
    with tempfile.TemporaryDirectory(prefix="yolotl-ov-profile-") as tmp:
        images = calibration_images(64)
        graphs = yolotl_graphs(detector_of(parse_variant(" ".join(args.detector))), [args.size], images, Path(tmp))
        models = {f"yolotl {runtime}": (graphs[runtime, args.size], True) for runtime in ("OpenVINO FP32", "OpenVINO INT8")}
        if args.reference:
            from reference_models import reference_graphs

            for name, per_model in reference_graphs([args.size], images, Path(tmp) / "reference", CLASSES).items():
                models |= {f"{name} {runtime}": (per_model[runtime, args.size], False)
                           for runtime in ("OpenVINO FP32", "OpenVINO INT8")}
        for threads in args.threads:
            for title, (path, ours) in models.items():
                counters, whole = profile(path, threads, args.size, args.runs, ours)
                print_profile(f"{title}, {args.size} px, {threads} thread{'s' if threads > 1 else ''}", counters, whole)
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
