"""``yolotl-predict``: detect objects in an image, a folder or a glob with :func:`yolotl.predict_source`.

    yolotl-predict ckpt=outputs/<run>/checkpoints/best.ckpt source=photos/ score_threshold=0.4
    yolotl-predict ckpt=model.onnx source='images/*.jpg' classes=[WBC]
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from yolotl.cli.shell import cli_errors, hydra_command


def run(cfg: DictConfig) -> None:
    """Predict, save annotated images and predictions.json, print what was found and skipped."""
    from yolotl.api import predict_source

    classes = cfg.classes
    if classes is not None and not isinstance(classes, (str, int)):
        classes = list(OmegaConf.to_container(classes))
    with cli_errors():
        result = predict_source(
            cfg.ckpt,
            cfg.source,
            output_dir=cfg.output_dir,
            score_threshold=cfg.score_threshold,
            iou_threshold=cfg.iou_threshold,
            max_detections=cfg.max_detections,
            classes=classes,
            save_images=cfg.save_images,
            batch_size=cfg.batch_size,
            device=cfg.device,
        )
    boxes = sum(len(entry["detections"]) for entry in result["images"])
    print(f"{len(result['images'])} images, {boxes} detections -> {result['output_dir']}/predictions.json")
    if result["skipped"]:
        print(f"skipped {len(result['skipped'])} unreadable files (listed in predictions.json):")
        for item in result["skipped"]:
            print(f"  {item['image']}")


main = hydra_command("predict", run)

if __name__ == "__main__":
    main()
