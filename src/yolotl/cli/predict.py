"""``yolotl-predict``: detect objects in images, frame folders, videos, cameras and streams with
:func:`yolotl.predict_source`.

    yolotl-predict ckpt=outputs/<run>/checkpoints/best.ckpt source=photos/ score_threshold=0.4
    yolotl-predict ckpt=model.onnx source='images/*.jpg' classes=[WBC]
    yolotl-predict ckpt=best.ckpt source=traffic.mp4 track=bytetrack vid_stride=2
    yolotl-predict ckpt=best.ckpt source=0            # camera 0 until Ctrl-C
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from yolotl.cli.shell import cli_errors, hydra_command


def run(cfg: DictConfig) -> None:
    """Predict, save annotated images or video and the predictions, print what was found and skipped."""
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
            vid_stride=cfg.vid_stride,
            track=cfg.track,
            save_video=cfg.save_video,
            progress=cfg.progress,
        )
    if "images" in result:
        _print_images(result)
    else:
        _print_stream(result)
        if result["interrupted"]:
            raise SystemExit(130)  # the shell's code for Ctrl-C; every file was closed first


def _print_images(result: dict[str, Any]) -> None:
    if result.get("task") == "semantic":
        print(f"{len(result['images'])} images, class maps -> {result['output_dir']}/predictions.json, "
              f"label maps in {result['labels_dir']}")
    else:
        boxes = sum(len(entry["detections"]) for entry in result["images"])
        print(f"{len(result['images'])} images, {boxes} detections -> {result['output_dir']}/predictions.json")
    if result["skipped"]:
        print(f"skipped {len(result['skipped'])} unreadable files (listed in predictions.json):")
        for item in result["skipped"]:
            print(f"  {item['image']}")


def _print_stream(result: dict[str, Any]) -> None:
    fps = result["fps"]
    stages = ", ".join(f"{stage} {_rate(fps[stage])}" for stage in ("decode", "model", "track", "write")
                       if fps[stage] is not None)
    seconds = result["wall_seconds"]
    print(f"{result['frames']} frames in {seconds:.1f} s ({_rate(fps['overall'])} fps); fps per stage: {stages}")
    if result["tracks"] is not None:
        counts = ", ".join(f"{name} {count}" for name, count in result["tracks"].items()) or "none"
        print(f"unique tracks per class: {counts}")
    if result["skipped_count"]:
        print(f"skipped {result['skipped_count']} unreadable files (listed in summary.json)")
    if result["stopped"]:
        print(f"stopped early: {result['stopped']}")
    if result["interrupted"]:
        print("interrupted (Ctrl-C): the files below hold every frame done")
    written = [result["predictions"], *([result["video"]] if result["video"] else [])]
    print(f"-> {', '.join(written)} (summary.json beside)")


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


main = hydra_command("predict", run)

if __name__ == "__main__":
    main()
