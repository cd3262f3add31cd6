"""The examples run as documented: the Python-API script (every step, tiny budget), the quickstart
notebook (executed with nbclient in a scratch folder; it must learn) and the quickstart script."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "train_api.py"


@pytest.mark.slow
def test_api_example_runs_every_step(tmp_path):
    """The Python-API script end to end on a tiny budget (data, detector, fit, test, predict).

    Learning is asserted by the quickstart notebook below and the trained_run fixture; this run
    only has to get through every step and print what it documents."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), "--root", str(tmp_path / "data"), "--epochs", "1",
         "--image-size", "96", "--num-train", "32", "--augment", "light"],
        capture_output=True, text=True, timeout=500,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "288 tensors loaded" in result.stdout  # the offline ImageNet weights
    score = float(re.search(r"test mAP50 ([0-9.]+), mAP50-95 ([0-9.]+)", result.stdout).group(1))
    assert 0.0 <= score <= 1.0, result.stdout


ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "quickstart.ipynb"
QUICKSTART = ROOT / "examples" / "quickstart.py"


def test_quickstart_notebook_is_stored_without_outputs():
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)
    assert notebook.metadata.kernelspec.name == "python3"


def test_quickstart_script_help():
    result = subprocess.run([sys.executable, str(QUICKSTART), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "--output" in result.stdout and "--epochs" in result.stdout


def _private_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A kernelspec that runs this very interpreter, found first through a private JUPYTER_PATH."""
    import json

    name = "yolotl-test-python3"
    spec = tmp_path / "jupyter" / "kernels" / name
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": name, "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "jupyter" / "runtime"))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend turns plt.show() into PNG output
    return name


@pytest.mark.slow
def test_quickstart_notebook_runs_and_learns(tmp_path, monkeypatch):
    """The notebook runs top to bottom in a scratch folder (its own mAP50 > 0.3 assert included)."""
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("ipykernel")
    kernel = _private_kernel(tmp_path, monkeypatch)
    work = tmp_path / "work"
    work.mkdir()
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(notebook, kernel_name=kernel, timeout=900, resources={"metadata": {"path": str(work)}})
    client.execute()  # raises CellExecutionError (with the cell's traceback) if any cell fails

    text = "".join(
        output.get("text", "") + output.get("data", {}).get("text/plain", "")
        for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
    )
    score = float(re.search(r"test mAP50 ([0-9.]+)", text).group(1))
    assert score > 0.3, text[-3000:]
    assert re.search(r"(circle|square|triangle) +0\.\d\d \[", text), text[-3000:]
    images = [o for cell in notebook.cells for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) >= 5  # training curves, three report plots, the drawn prediction

    run = work / "runs" / "quickstart" / "run"
    for name in ("checkpoints/best.ckpt", "logs/metrics.csv", "training_curves.png", "prediction.png",
                 "eval/metrics.json", "eval/predictions.json", "eval/ground_truth.json", "eval/report/report.md",
                 "eval/report/pr_curves.png", "eval/report/confusion_matrix.png", "eval/report/predictions.png"):
        assert (run / name).is_file(), name


NOTEBOOK_DDP_CELLS = [
    """import torch, lightning as L, yolotl
root = yolotl.make_synthetic_dataset("synthetic", num_train=16, num_val=4, num_test=4, image_size=64)
dm = yolotl.DetectionDataModule(root=root, format="yolo", image_size=64, batch_size=4, loader={"num_workers": 0})
dm.setup("fit")
detector = yolotl.create_detector("mobilenetv3_small_100", class_names=dm.class_names, pretrained=False)
module = yolotl.DetectionModule(detector, optimizer=yolotl.adamw(lr=2e-3), strategy=yolotl.Finetune(freeze_stages=1),
                                train_class_counts=dm.class_counts("train"))
before = {k: v.clone() for k, v in detector.state_dict().items()}""",
    """trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp_notebook_find_unused_parameters_true", max_epochs=1,
                    callbacks=[yolotl.EMA()], logger=False, enable_progress_bar=False, default_root_dir="run")
trainer.fit(module, datamodule=dm)""",
    """changed = [k for k, v in detector.state_dict().items() if not torch.equal(before[k], v)]
assert trainer.state.finished and trainer.world_size == 2
assert len(changed) > len(before) // 2, len(changed)  # the spawned ranks' training came back to this process
print("boxes", yolotl.TorchDetector(detector).predict(torch.rand(3, 64, 64))[0]["boxes"].shape)""",
]


@pytest.mark.slow
def test_ddp_notebook_trains_two_processes_from_a_notebook_on_the_cpu(tmp_path, monkeypatch):
    """Two CPU processes (gloo) from a Jupyter kernel, with nothing but `import yolotl` objects. Lightning
    refuses ddp_spawn in an interactive session; ddp_notebook is its notebook strategy (fork)."""
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("ipykernel")
    kernel = _private_kernel(tmp_path, monkeypatch)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    work = tmp_path / "work"
    work.mkdir()
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code) for code in NOTEBOOK_DDP_CELLS])
    client = nbclient.NotebookClient(notebook, kernel_name=kernel, timeout=600, resources={"metadata": {"path": str(work)}})
    client.execute()  # raises CellExecutionError (with the cell's traceback) if any cell fails
    text = "".join(output.get("text", "") for cell in notebook.cells for output in cell.outputs)
    assert "boxes torch.Size([" in text
