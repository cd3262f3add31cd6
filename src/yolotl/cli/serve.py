"""``yolotl-serve``: a trained model as an HTTP service, with a page to try it, via :func:`yolotl.serve`.

    yolotl-serve ckpt=outputs/<run>/checkpoints/best.ckpt port=8000
    yolotl-serve ckpt=model.onnx host=0.0.0.0 port=8080 max_batch_size=16
"""

from __future__ import annotations

from omegaconf import DictConfig

from yolotl.cli.shell import cli_errors, hydra_command


def run(cfg: DictConfig) -> None:
    """Open the model (a file that fails to load stops here with one line), then serve until interrupted."""
    from yolotl.api import serve

    print(f"yolotl-serve: {cfg.ckpt} at http://{cfg.host}:{cfg.port}/ (POST /predict, GET /metadata, /health)",
          flush=True)
    with cli_errors():
        serve(
            cfg.ckpt,
            host=str(cfg.host),
            port=cfg.port,
            device=cfg.device,
            max_batch_size=cfg.max_batch_size,
            batch_timeout=cfg.batch_timeout,
            workers_per_device=cfg.workers_per_device,
            max_pixels=cfg.max_pixels,
            max_body_mb=cfg.max_body_mb,
            score_threshold=cfg.score_threshold,
            iou_threshold=cfg.iou_threshold,
            max_detections=cfg.max_detections,
            timeout=cfg.timeout,
            log_level=cfg.log_level,
        )


main = hydra_command("serve", run)

if __name__ == "__main__":
    main()
