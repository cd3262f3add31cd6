"""The Python-API example runs as documented (small settings) and its detector learns."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "train_api.py"


@pytest.mark.slow
def test_api_example_trains_tests_and_predicts(tmp_path):
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), "--root", str(tmp_path / "data"), "--epochs", "8",
         "--image-size", "128", "--num-train", "96"],
        capture_output=True, text=True, timeout=500,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    score = float(re.search(r"test mAP50 ([0-9.]+)", result.stdout).group(1))
    assert score > 0.3, result.stdout
    assert re.search(r"(circle|square|triangle) +0\.\d\d \[", result.stdout), result.stdout
