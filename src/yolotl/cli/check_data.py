"""``yolotl-check-data``: the dataset health report, before any training.

It reads the configured dataset like training would (the ``data`` config group), decodes every
image, and prints a table of what is wrong per split; ``data_health.json`` lists every finding::

    yolotl-check-data data=voc data.root=../shared/datasets/bccd
    yolotl-check-data experiment=aquarium out=reports/aquarium strict=true   # exit 1 on problems
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig, OmegaConf

from yolotl.api.configs import override_key
from yolotl.cli.shell import cli_errors, hydra_command

if TYPE_CHECKING:
    from yolotl.data.health import HealthReport


def check_from_config(cfg: DictConfig) -> HealthReport:
    """:func:`~yolotl.check_dataset` on ``cfg.data`` (the synthetic dataset is written first)."""
    from yolotl.data import check_dataset, prepare_dataset

    data = cfg.data
    reading = _reading(data)
    synthetic = reading.get("synthetic")
    prepare_dataset(data.format, data.root, OmegaConf.to_container(synthetic, resolve=True) if synthetic else None)
    class_names = reading.get("class_names")
    return check_dataset(
        data.root, data.format,
        splits=list(cfg.splits) if cfg.get("splits") else configured_splits(data),
        class_names=list(class_names) if class_names else None,
        tiny_box_px=cfg.tiny_box_px,
        near_duplicate_iou=cfg.near_duplicate_iou,
        area_outlier_ratio=cfg.area_outlier_ratio,
        **_layout(data),
        train_split=reading.get("train_split", "train"),
        sequence_leakage=cfg.get("sequence_leakage"),
    )


def _reading(data: DictConfig) -> DictConfig:
    """``data.reading``: class names, split names, VOC folders, synthetic settings (empty if absent)."""
    return data.get("reading") or OmegaConf.create({})


def _layout(data: DictConfig) -> dict[str, str | None]:
    """VOC folder options (``data.reading.image_dir``, ``data.reading.annotation_dir``) where the format has them."""
    reading = _reading(data)
    return {key: reading.get(key) for key in ("image_dir", "annotation_dir") if reading.get(key) is not None}


def configured_splits(data: DictConfig) -> list[str]:
    """The splits training would read: ``data.reading.train_split`` and ``val_split``, and ``test_split``
    (the default ``test`` only when the dataset has it; a test split the user named must exist), each once."""
    from yolotl.data import SplitNotFoundError, read_split

    fmt = str(data.format).lower()
    reading = _reading(data)
    names = [reading.get("train_split", "train"), reading.get("val_split", "val")]
    test = reading.get("test_split", "test")
    if test and test != "test":
        names.append(test)  # named by the user: a typo must fail, as in training
    elif test:
        try:  # optional, as in training (reading the labels is cheap; images are decoded later)
            class_names = reading.get("class_names")
            read_split(fmt, data.root, test, list(class_names) if class_names else None, **_layout(data))
            names.append(test)
        except SplitNotFoundError:
            pass
    return list(dict.fromkeys(name for name in names if name))


def run(cfg: DictConfig) -> None:
    """Check, print the table, write ``data_health.json``; exit 1 on problems if strict."""
    with cli_errors():
        report = check_from_config(cfg)
        path = report.write_json(Path(_out_dir(cfg)) / "data_health.json")
    print(report.table(cfg.examples))
    print(f"\nevery finding: {path}")
    if cfg.strict and report.problems():
        raise SystemExit(1)


def _out_dir(cfg: DictConfig) -> str:
    """``out=`` when given; else Hydra's run folder (``hydra.run.dir``, which defaults to ``out``)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return str(cfg.out)
    hydra = HydraConfig.get()
    given = any(override_key(o) == "out" for o in hydra.overrides.task)
    output_dir = hydra.runtime.get("output_dir")
    return str(cfg.out) if given or not output_dir else str(output_dir)


main = hydra_command("check_data", run)


if __name__ == "__main__":
    main()
