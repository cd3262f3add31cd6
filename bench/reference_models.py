"""YOLOv8n's and YOLO26n's graphs and training speed for bench/speed.py's reference columns.

Ultralytics is AGPL-3.0: it is never imported here, nor by yolotl. Everything it does runs in the scratch
virtual environment that ``../shared/tools/yolov8n_reference.sh`` makes (``$YOLOV8N_REF_VENV``, default
``$TMPDIR/yolov8n-ref-venv``), through its own ``yolo`` command line:

- :func:`reference_training` runs the shared tool as it is and reads YOLOv8n's training images/s from
  the table it prints (BCCD, 416 px, batch 16, its first epoch);
- :func:`reference_graphs` exports YOLOv8n and YOLO26n (random init from their yaml: latency does not
  depend on trained weights) at each size with a fixed input, as ONNX and as Ultralytics' OpenVINO FP32
  and NNCF INT8 export (``int8=True``, calibrated on the same BCCD images as yolotl's INT8); their
  ONNX Runtime INT8 graphs are quantised here the way the shared tool does it (static QDQ, per-channel,
  int8 weights and activations) on the same images.

The graphs are then timed by bench/speed.py in yolotl's own process with the same ONNX Runtime and
OpenVINO builds and settings as yolotl's graphs, round by round beside them.
"""

from __future__ import annotations

import os
import re
import subprocess
from importlib.metadata import version
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TOOL = REPO.parent / "shared" / "tools" / "yolov8n_reference.sh"
MODELS = {"YOLOv8n": "yolov8n", "YOLO26n": "yolo26n"}
_TRAIN_LINE = re.compile(r"^\| train images/s[^|]*\| ([0-9.]+) \|")


def reference_venv() -> Path:
    """The shared tool's scratch environment (the tool makes it on its first run)."""
    return Path(os.environ.get("YOLOV8N_REF_VENV") or Path(os.environ.get("TMPDIR", "/tmp")) / "yolov8n-ref-venv")


def reference_training(bccd: Path) -> tuple[float, str]:
    """YOLOv8n's training images/s from the shared tool, and the table the tool printed."""
    done = subprocess.run(["bash", str(TOOL), str(bccd)], capture_output=True, text=True)
    table = done.stdout.strip()
    speeds = [float(m.group(1)) for line in table.splitlines() if (m := _TRAIN_LINE.match(line))]
    if done.returncode or not speeds:
        raise SystemExit(f"{TOOL} failed or printed no training line:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return speeds[0], table


def _ensure_openvino(venv: Path) -> None:
    """Ultralytics' OpenVINO export needs openvino and nncf in its environment: the same versions as ours."""
    python = venv / "bin" / "python"
    if subprocess.run([str(python), "-c", "import openvino, nncf"], capture_output=True).returncode:
        pins = [f"openvino=={version('openvino')}", f"nncf=={version('nncf')}"]
        subprocess.run([str(python), "-m", "pip", "install", "-q", *pins], check=True)


def _calibration_data(images: list[Path], work: Path, class_names: list[str]) -> Path:
    """A YOLO-layout data yaml whose val split is the calibration images (Ultralytics calibrates on val;
    empty label files: calibration reads only the pixels)."""
    root = work / "calibration"
    (root / "images" / "val").mkdir(parents=True, exist_ok=True)
    (root / "labels" / "val").mkdir(parents=True, exist_ok=True)
    for image in images:
        target = root / "images" / "val" / image.name
        if not target.exists():
            target.symlink_to(image.resolve())
        (root / "labels" / "val" / f"{image.stem}.txt").touch()
    names = "".join(f"  {i}: {name}\n" for i, name in enumerate(class_names))
    data = root / "data.yaml"
    data.write_text(f"path: {root}\ntrain: images/val\nval: images/val\nnames:\n{names}")
    return data


def _yolo_export(venv: Path, model: str, size: int, work: Path, *args: str) -> None:
    done = subprocess.run(
        [str(venv / "bin" / "yolo"), "export", f"model={model}.yaml", f"imgsz={size}", "dynamic=False", *args],
        cwd=work, capture_output=True, text=True, env=os.environ | {"YOLO_OFFLINE": "1"},
    )
    if done.returncode:
        raise SystemExit(f"yolo export {model} {' '.join(args)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


def _quantize_onnx(path: Path, images: list[Path], size: int) -> Path:
    """Static QDQ INT8 (per-channel int8 weights, int8 activations), as the shared tool quantises."""
    import cv2
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.images = iter(images)

        def get_next(self) -> dict | None:
            path = next(self.images, None)
            if path is None:
                return None
            image = cv2.imread(str(path))[:, :, ::-1]
            scale = size / max(image.shape[:2])
            h, w = round(image.shape[0] * scale), round(image.shape[1] * scale)
            canvas = np.full((size, size, 3), 114, np.uint8)
            canvas[:h, :w] = cv2.resize(image, (w, h))
            return {"images": (canvas.transpose(2, 0, 1)[None] / 255.0).astype(np.float32)}

    pre, out = path.with_suffix(".pre.onnx"), path.with_suffix(".int8.onnx")
    quant_pre_process(str(path), str(pre))
    quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    weight_type=QuantType.QInt8, activation_type=QuantType.QInt8)
    return out


def reference_graphs(sizes: list[int], images: list[Path], work: Path,
                     class_names: list[str]) -> dict[str, dict[tuple[str, int], Path]]:
    """``{"YOLOv8n": {(runtime, size): graph}, "YOLO26n": ...}`` for runtimes ONNX Runtime FP32 / INT8 and
    OpenVINO FP32 / INT8 (an ``.onnx`` file or an IR's ``.xml``)."""
    venv = reference_venv()
    if not (venv / "bin" / "yolo").exists():
        raise SystemExit(f"no Ultralytics environment at {venv}: run {TOOL} once (bench/speed.py --reference does)")
    _ensure_openvino(venv)
    data = _calibration_data(images, work, class_names)
    graphs: dict[str, dict[tuple[str, int], Path]] = {}
    for name, model in MODELS.items():
        graphs[name] = {}
        for size in sizes:
            folder = work / f"{model}-{size}"
            folder.mkdir(parents=True, exist_ok=True)
            _yolo_export(venv, model, size, folder, "format=onnx", "simplify=True")
            _yolo_export(venv, model, size, folder, "format=openvino")
            _yolo_export(venv, model, size, folder, "format=openvino", "int8=True", f"data={data}", "fraction=1.0")
            onnx = folder / f"{model}.onnx"
            graphs[name]["ONNX Runtime FP32", size] = onnx
            graphs[name]["ONNX Runtime INT8", size] = _quantize_onnx(onnx, images, size)
            graphs[name]["OpenVINO FP32", size] = folder / f"{model}_openvino_model" / f"{model}.xml"
            graphs[name]["OpenVINO INT8", size] = folder / f"{model}_int8_openvino_model" / f"{model}.xml"
            for path in graphs[name].values():
                if not path.is_file():
                    raise SystemExit(f"Ultralytics' export did not write {path}")
    return graphs
