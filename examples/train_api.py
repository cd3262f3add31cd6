"""yolotl from Python, no Hydra: data module, detector on a timm backbone, Lightning Trainer, predict.

    python examples/train_api.py                       # synthetic data, about 4 minutes on 2 CPU cores
    python examples/train_api.py --backbone resnet18 --pretrained false --epochs 3

The same lines work in a notebook cell by cell.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import lightning as L

import yolotl


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", default=str(Path(tempfile.gettempdir()) / "yolotl-example-synthetic"))
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--pretrained", default="auto")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--num-train", type=int, default=240)
    parser.add_argument("--augment", default="medium", help="none | light | medium | heavy (docs/data_pipeline.md)")
    args = parser.parse_args()

    # 1. Data: the built-in synthetic dataset (YOLO format on disk); use format="voc"/"yolo"/"coco" for yours.
    datamodule = yolotl.DetectionDataModule(
        root=args.root, format="synthetic", image_size=args.image_size, batch_size=16, augment=args.augment,
        reading={"synthetic": {"num_train": args.num_train, "num_val": 60, "num_test": 60, "image_size": args.image_size}},
        loader={"num_workers": 2},
    )
    datamodule.setup()

    # 2. Detector: any timm backbone; ImageNet weights offline for efficientnet_lite0.
    detector = yolotl.create_detector(
        args.backbone, class_names=datamodule.class_names, pretrained=args.pretrained, image_size=args.image_size
    )
    print(detector.load_report.summary())

    # 3. Train with a transfer strategy and EMA, then score the test split.
    module = yolotl.DetectionModule(detector, optimizer=yolotl.adamw(lr=2e-3), strategy=yolotl.Finetune(freeze_stages=2, backbone_lr_mult=0.1),
                                    train_class_counts=datamodule.class_counts("train"))
    trainer = L.Trainer(
        max_epochs=args.epochs,
        callbacks=[yolotl.EMA()],
        logger=False,
        enable_checkpointing=False,
    )
    trainer.fit(module, datamodule=datamodule)
    scores = trainer.test(module, datamodule=datamodule)[0]
    print(f"test mAP50 {scores['test/map_50']:.3f}, mAP50-95 {scores['test/map']:.3f}")

    # 4. Predict on an image file: boxes in the image's own pixels.
    image = sorted((Path(args.root) / "test" / "images").glob("*.png"))[0]
    threshold = min(0.3, scores["test/confidence"])  # a short run is under-confident: use its best-F1 point
    detections = yolotl.TorchDetector(detector).predict(str(image), score_threshold=threshold)[0]
    for box, score, label in zip(detections["boxes"], detections["scores"], detections["labels"]):
        print(f"{detector.class_names[int(label)]:>9} {float(score):.2f} {[round(float(v), 1) for v in box]}")


if __name__ == "__main__":
    main()
