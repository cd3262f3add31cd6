"""``yolotl-preview-augment``: a grid of augmented training samples, to look at before training."""

from __future__ import annotations

import lightning.pytorch as pl
from hydra.utils import instantiate
from omegaconf import DictConfig

from yolotl.data.preview import save_augmentation_grid
from yolotl.train import cli_errors, config_dir


def run_cli(cfg: DictConfig) -> None:
    """Hydra task: build the configured DataModule and save the grid to ``cfg.out``."""
    with cli_errors():
        pl.seed_everything(cfg.seed, verbose=False)
        datamodule = instantiate(cfg.data, _convert_="all")
        datamodule.prepare_data()
        path = save_augmentation_grid(datamodule, cfg.out, cfg.num_samples, cfg.epoch,
                                      max_epochs=cfg.trainer.max_epochs)
    print(f"augmented samples: {path}")


def main() -> None:
    """Console script ``yolotl-preview-augment``."""
    import hydra

    hydra.main(config_path=config_dir(), config_name="preview", version_base="1.3")(run_cli)()


if __name__ == "__main__":
    main()
