"""``yolotl-export``: a checkpoint as ONNX with :func:`yolotl.export`, and how closely ONNX Runtime agrees.

    yolotl-export ckpt=outputs/<run>/checkpoints/best.ckpt                 # -> best.onnx next to it
    yolotl-export ckpt=best.ckpt nms=true output=model.onnx
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from yolotl.cli.shell import cli_errors, hydra_command


def run(cfg: DictConfig) -> None:
    """Export, print the written path and the PyTorch-vs-ONNX Runtime parity line."""
    from yolotl import ConfigError, load
    from yolotl.api import export, parity_summary

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
        )
        summary = parity_summary(load(cfg.ckpt), path)
    print(f"wrote {path}")
    print(summary)


main = hydra_command("export", run)

if __name__ == "__main__":
    main()
