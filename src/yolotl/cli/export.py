"""``yolotl-export``: a checkpoint as ONNX or OpenVINO with :func:`yolotl.export`, and how closely its runtime
agrees with PyTorch.

    yolotl-export ckpt=outputs/<run>/checkpoints/best.ckpt                 # -> best.onnx next to it
    yolotl-export ckpt=best.ckpt nms=true output=model.onnx
    yolotl-export ckpt=best.ckpt quantize=int8                             # also best.int8.onnx
    yolotl-export ckpt=best.ckpt format=openvino                           # best.xml + best.bin
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from yolotl.cli.shell import cli_errors, hydra_command


def run(cfg: DictConfig) -> None:
    """Export, print the written paths and the PyTorch-vs-runtime parity line of the float model."""
    from yolotl import ConfigError, load
    from yolotl.api import export, output_path, parity_summary

    with cli_errors():
        if OmegaConf.is_missing(cfg, "ckpt"):
            raise ConfigError("no checkpoint given: yolotl-export ckpt=<run>/checkpoints/best.ckpt")
        path = export(
            cfg.ckpt,
            format=cfg.format,
            output=cfg.output,
            nms=cfg.nms,
            dynamic=cfg.dynamic,
            opset=cfg.opset,
            exporter=cfg.exporter,
            quantize=cfg.quantize,
            calibration=cfg.calibration,
            calibration_images=cfg.calibration_images,
        )
        float_model = output_path(cfg.ckpt, cfg.output, cfg.format)
        summary = parity_summary(load(cfg.ckpt).detector, float_model)
    print(f"wrote {float_model}")
    print(summary)
    if cfg.quantize:
        print(f"wrote {path} ({cfg.quantize}, statically quantised; decode and NMS stay float32)")
        print(f"score it like the float model: yolotl-eval ckpt={path}")


main = hydra_command("export", run)

if __name__ == "__main__":
    main()
