"""Benchmark: is the input pipeline faster than the training step? (the loader must not be the wait)

Three figures from the same process, at the DataModule's default settings unless overridden:

1. pipeline images/s: the training dataloader alone (its workers decoding, augmenting, mosaics),
   after the RAM cache is filled (its fill time is printed separately);
2. training-step images/s: forward + loss + backward + AdamW step of the default detector and
   strategy (finetune, efficientnet_lite0) on batches already in memory;
3. a real Lightning fit of ``--fit-batches`` batches with the simple profiler: the share of the
   wall time the training loop spent waiting for the next batch.

    python bench/pipeline.py --data-root ../shared/datasets/bccd --format voc
    python bench/pipeline.py --data-root ../shared/datasets/aquarium --format yolo --val-split valid --cache none
"""

from __future__ import annotations

import argparse
import os
import time

import lightning.pytorch as pl
import torch
from lightning.pytorch.profilers import SimpleProfiler

import yolotl

_WAIT = "[_TrainingEpochLoop].train_dataloader_next"


def build_datamodule(args: argparse.Namespace) -> yolotl.DetectionDataModule:
    workers = args.num_workers if args.num_workers == "auto" else int(args.num_workers)
    return yolotl.DetectionDataModule(args.data_root, format=args.format, image_size=args.image_size,
                                      batch_size=args.batch_size, augment=args.augment, reading={"val_split": args.val_split},
                                      loader={"num_workers": workers, "cache": args.cache})


def pipeline_rate(loader: torch.utils.data.DataLoader, batches: int) -> tuple[float, list]:
    """Images/s of the loader over ``batches`` batches after one warm-up batch (into the next epochs
    when one is shorter, as training would); keeps the batches."""
    epoch = 0
    iterator = iter(loader)
    kept = [next(iterator)]
    start, images = time.perf_counter(), 0
    while len(kept) <= batches:
        try:
            batch = next(iterator)
        except StopIteration:
            epoch += 1
            loader.sampler.set_epoch(epoch)
            iterator = iter(loader)
            continue
        images += len(batch[0])
        kept.append(batch)
    return images / (time.perf_counter() - start), kept


def step_rate(module: yolotl.DetectionModule, batches: list) -> float:
    """Images/s of forward + loss + backward + optimizer step on in-memory batches."""
    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    module.train()
    module.loss(*_outputs(module, batches[0])).total.backward()  # warm-up
    start, images = time.perf_counter(), 0
    for batch in batches[1:]:
        optimizer.zero_grad(set_to_none=True)
        module.loss(*_outputs(module, batch)).total.backward()
        optimizer.step()
        images += len(batch[0])
    return images / (time.perf_counter() - start)


def _outputs(module: yolotl.DetectionModule, batch: tuple) -> tuple:
    out = module.detector(batch[0])
    return out.box_maps, out.cls_maps, module.detector.strides, batch[1]


def fit_wait_share(dm: yolotl.DetectionDataModule, module: yolotl.DetectionModule, batches: int) -> tuple[float, float]:
    """(share of the loop's time spent waiting for data, wall seconds) in a short real fit."""
    profiler = SimpleProfiler()
    trainer = pl.Trainer(max_epochs=1, limit_train_batches=batches, limit_val_batches=0, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         profiler=profiler)
    start = time.perf_counter()
    trainer.fit(module, datamodule=dm)
    wall = time.perf_counter() - start
    waits = profiler.recorded_durations.get(_WAIT, [])[1:]  # the first batch also starts the workers
    steps = profiler.recorded_durations.get("run_training_batch", [])[1:]
    return sum(waits) / max(1e-9, sum(waits) + sum(steps)), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default="../shared/datasets/bccd")
    parser.add_argument("--format", default="voc")
    parser.add_argument("--val-split", default="val")
    parser.add_argument("--image-size", type=int, default=416)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--num-workers", default="auto")
    parser.add_argument("--augment", default="medium")
    parser.add_argument("--cache", default="ram")
    parser.add_argument("--batches", type=int, default=12)
    parser.add_argument("--fit-batches", type=int, default=12)
    args = parser.parse_args()
    pl.seed_everything(0, verbose=False)
    dm = build_datamodule(args)
    dm.setup("fit")
    start = time.perf_counter()
    loader = dm.train_dataloader()  # fills the cache
    fill = time.perf_counter() - start
    loader_rate, batches = pipeline_rate(loader, args.batches)
    del loader
    detector = yolotl.create_detector("efficientnet_lite0", num_classes=dm.num_classes, class_names=dm.class_names,
                                      pretrained=False, image_size=args.image_size)
    strategy = yolotl.Finetune()
    module = yolotl.DetectionModule(detector, strategy=strategy)
    strategy.apply(module, epoch=0)
    train_rate = step_rate(module, batches)
    wait_share, wall = fit_wait_share(dm, module, args.fit_batches)
    print(f"machine: {os.cpu_count()} CPU cores, torch threads {torch.get_num_threads()}, "
          f"loader workers {dm.num_workers}, cache {args.cache}, augment {args.augment}, "
          f"image {args.image_size}, batch {args.batch_size}")
    print("| data | cache fill s | pipeline img/s | train-step img/s | pipeline / step | fit: time waiting for data |")
    print("|---|---|---|---|---|---|")
    print(f"| {os.path.basename(os.path.normpath(args.data_root))} | {fill:.1f} | {loader_rate:.1f} | {train_rate:.1f} | "
          f"{loader_rate / train_rate:.1f}x | {100 * wait_share:.1f}% of {args.fit_batches} batches ({wall:.0f} s) |")


if __name__ == "__main__":
    main()
