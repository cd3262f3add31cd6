"""``yolotl-preview-augment``: a grid of augmented training samples, to look at before training.

    yolotl-preview-augment experiment=aquarium augment=heavy out=samples.jpg
"""

from __future__ import annotations

from omegaconf import DictConfig

from yolotl.cli.shell import cli_errors, hydra_command


def run(cfg: DictConfig) -> None:
    """Build the configured DataModule and save the grid to ``cfg.out``."""
    from hydra.utils import instantiate
    from lightning.pytorch import seed_everything

    from yolotl import save_augmentation_grid

    with cli_errors():
        seed_everything(cfg.seed, verbose=False)
        datamodule = instantiate(cfg.data, _convert_="all")
        datamodule.prepare_data()
        path = save_augmentation_grid(datamodule, cfg.out, cfg.num_samples, cfg.epoch,
                                      max_epochs=cfg.trainer.max_epochs)
    print(f"augmented samples: {path}")


main = hydra_command("preview", run)

if __name__ == "__main__":
    main()
