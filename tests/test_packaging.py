"""The configs ship inside the wheel: build it, install it into a fresh venv, compose the config there."""

import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_carries_the_configs_and_the_console_script(tmp_path):
    pytest.importorskip("hatchling")
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation", "-w", str(dist), "-q"],
        check=True, timeout=300,
    )
    wheel = next(dist.glob("yolotl-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    # dependencies come from this environment (no downloads); yolotl itself only from the wheel
    (Path(site) / "_deps_from_test_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "-q", str(wheel)], check=True, timeout=300)

    probe = textwrap.dedent(
        """
        import yolotl.api
        from hydra import compose, initialize_config_dir
        conf = yolotl.api.config_dir()
        assert "site-packages" in conf and "/src/" not in yolotl.__file__, (conf, yolotl.__file__)
        with initialize_config_dir(config_dir=conf, version_base="1.3"):
            cfg = compose(config_name="train", overrides=["experiment=bccd", "strategy=feature_extract",
                                                         "paths.output_dir=/tmp/x"])
        print(cfg.data.format, cfg.strategy._target_, conf)
        """
    )
    result = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("voc yolotl.FeatureExtract")

    shown = subprocess.run(
        [str(venv / "bin" / "yolotl-train"), "strategy=end_to_end", "--cfg", "job"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert shown.returncode == 0, shown.stderr
    assert "yolotl.EndToEnd" in shown.stdout

    checker = subprocess.run(
        [str(venv / "bin" / "yolotl-check-data"), "experiment=aquarium", "--cfg", "job"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert checker.returncode == 0, checker.stderr
    assert "tiny_box_px: 2.0" in checker.stdout and "format: yolo" in checker.stdout
