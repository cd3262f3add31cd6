"""The package's layering as contracts: arrows point down, commands stay apart, imports stay light.

Layers, top to bottom: cli/ -> api/ -> training/ -> evaluation/, inference/ -> data/ -> models/,
ops/ -> errors, constants, allocator. A module may import its own layer and the layers below, never above (function-level
imports included, and no comment exempts one).
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "yolotl"

# package -> the yolotl packages it must never import
FORBIDDEN = {
    "errors": {"ops", "models", "data", "evaluation", "inference", "training", "api", "cli"},
    "constants": {"errors", "ops", "models", "data", "evaluation", "inference", "training", "api", "cli"},
    "allocator": {"errors", "constants", "ops", "models", "data", "evaluation", "inference", "training", "api", "cli"},
    "ops": {"models", "data", "evaluation", "inference", "training", "api", "cli"},
    "models": {"data", "evaluation", "inference", "training", "api", "cli"},
    "data": {"ops", "models", "evaluation", "inference", "training", "api", "cli"},
    "evaluation": {"inference", "training", "api", "cli"},
    "inference": {"evaluation", "training", "api", "cli"},
    "training": {"api", "cli"},
    "api": {"cli"},
}
CLI_HELPERS = {"shell", "console", "overrides"}  # cli/ modules every command may use; the rest are commands


def _layer(module: str) -> str | None:
    """``yolotl.models.detector`` -> ``models``; ``yolotl.errors`` -> ``errors``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "yolotl" else None


def _module_name(path: Path, package: Path) -> str:
    relative = path.relative_to(package.parent).with_suffix("")
    parts = list(relative.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every import in the file, function-level ones included."""
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from yolotl import cli`` names the package it imports; ``from yolotl.x import y`` its module
            names = [f"yolotl.{a.name}" for a in node.names] if node.module == "yolotl" else [node.module]
        else:
            continue
        found += [(node.lineno, name) for name in names]
    return found


def layer_violations(package: Path = PACKAGE) -> list[str]:
    """Every import that points up the layers, or from one command module into another."""
    problems = []
    for path in sorted(package.rglob("*.py")):
        module = _module_name(path, package)
        layer = _layer(module)
        for line, imported in _imports(path):
            target = _layer(imported)
            if target is None:
                continue
            where = f"{path.relative_to(package.parent)}:{line} imports {imported}"
            if target in FORBIDDEN.get(layer or "", set()):
                problems.append(f"{where} ({layer}/ must not import {target}/)")
            if layer == "cli" and target == "cli" and not set(imported.split(".")[2:3]) <= CLI_HELPERS:
                problems.append(f"{where} (a command imports the CLI helper, never another command)")
            if layer is None and target == "cli":
                problems.append(f"{where} (import yolotl must not import a command)")
    return problems


def test_imports_point_down_the_layers():
    assert layer_violations() == []


def test_the_check_catches_a_forbidden_import(tmp_path):
    fake = tmp_path / "yolotl"
    (fake / "models").mkdir(parents=True)
    (fake / "cli").mkdir()
    (fake / "models" / "head.py").write_text("from yolotl.training.module import DetectionModule\n")
    (fake / "cli" / "eval.py").write_text("def run():\n    from yolotl.cli.train import run\n")
    (fake / "cli" / "train.py").write_text("from yolotl.cli.shell import hydra_command\n")
    problems = layer_violations(fake)
    assert len(problems) == 2, problems
    assert "models/ must not import training/" in problems[0] or "models/ must not import training/" in problems[1]
    assert any("never another command" in p for p in problems)


def test_no_comment_exempts_an_upward_import(tmp_path):
    """The old ``# layering:`` escape hatch is gone: a model that imports inference/ inside a function, with
    the comment that once excused it, is reported like any other."""
    fake = tmp_path / "yolotl"
    (fake / "models").mkdir(parents=True)
    (fake / "models" / "detector.py").write_text(
        "class YoloDetector:\n"
        "    def predict(self, images):\n"
        "        # layering: predict() delegates to inference/ (sanctioned)\n"
        "        from yolotl.inference.predict import predict_images  # layering: sanctioned\n"
        "        return predict_images(images)\n"
    )
    problems = layer_violations(fake)
    assert len(problems) == 1 and "models/ must not import inference/" in problems[0], problems
    assert "detector.py:4 imports yolotl.inference.predict" in problems[0]


def _modules_after(code: str) -> set[str]:
    probe = code + "\nimport sys\nprint('\\n'.join(sorted(sys.modules)))\n"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=300)
    return set(done.stdout.split())


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in ("lightning", "pytorch_lightning", "hydra")
                  or m.startswith("yolotl.cli"))


def test_import_yolotl_loads_no_command_no_lightning_no_hydra():
    assert _heavy(_modules_after("import yolotl")) == []


@pytest.mark.slow
def test_reading_data_loading_and_predicting_need_neither_lightning_nor_hydra(tmp_path):
    from tests.models.test_transfer import save_detector
    from yolotl import create_detector

    ckpt = save_detector(create_detector("efficientnet_lite0", class_names=["a", "b"], pretrained=False,
                                         image_size=64, neck_width=16), tmp_path / "tiny.ckpt")
    code = textwrap.dedent(f"""
        import numpy as np
        import yolotl, yolotl.data
        yolotl.make_synthetic_dataset({str(tmp_path / 'syn')!r}, num_train=2, num_val=1, num_test=1, image_size=64)
        yolotl.read_split("yolo", {str(tmp_path / 'syn')!r}, "train")
        yolotl.check_dataset({str(tmp_path / 'syn')!r}, "yolo")
        detector = yolotl.load({str(ckpt)!r})
        detector.predict(np.zeros((64, 64, 3), dtype=np.uint8))
    """)
    assert _heavy(_modules_after(code)) == []
