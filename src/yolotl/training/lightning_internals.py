"""Every use of Lightning's private or undocumented internals, in one room.

yolotl needs a few things Lightning's public API does not give. Each function below says what it
relies on, why no public API does it, and the Lightning version it was written against (2.6.6).
``tests/training/test_lightning_internals.py`` checks each assumption on the installed Lightning,
and ``pyproject.toml`` bounds Lightning to the minor release that test passes on: a Lightning
release that moves one of these fails that test, not a user's training run.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.callbacks import Timer, WeightAveraging
from lightning.pytorch.strategies import DDPStrategy
from torch.optim.swa_utils import AveragedModel

__all__ = ["drop_timer_state", "global_rank", "move_callback_first", "set_average_model", "start_method"]


def set_average_model(callback: WeightAveraging, average: AveragedModel) -> None:
    """Give a ``WeightAveraging`` callback the ``AveragedModel`` its hooks update, swap in and save.

    Why: ``WeightAveraging.setup`` always averages the whole LightningModule; averaging a part of it
    (EMA: the detector only) means building the ``AveragedModel`` ourselves, and the callback keeps
    it in the private ``_average_model``, with no setter (Lightning 2.6.6).
    """
    if not hasattr(callback, "_average_model"):
        raise RuntimeError("this Lightning's WeightAveraging has no _average_model: yolotl's EMA needs "
                           "the Lightning versions its pyproject.toml names")
    callback._average_model = average


def drop_timer_state(trainer: pl.Trainer, checkpoint: dict[str, Any]) -> None:
    """Remove the state of the Trainer's ``Timer`` from a checkpoint being loaded, so it is not restored.

    Call it from a callback's ``on_load_checkpoint``. Why: ``Timer`` has no option to leave its
    elapsed time behind. This relies on Lightning calling every callback's ``on_load_checkpoint``
    before any ``load_state_dict``, both on the same checkpoint dict, whose ``"callbacks"`` entry maps
    ``callback.state_key`` to the state (``trainer/call.py``, Lightning 2.6.6): that order is not
    documented.
    """
    states = checkpoint.get("callbacks") or {}
    for callback in trainer.callbacks:
        if isinstance(callback, Timer):
            states.pop(callback.state_key, None)


def start_method(trainer: pl.Trainer) -> str | None:
    """How the Trainer's DDP strategy starts its processes: ``popen`` (ddp), ``spawn`` (ddp_spawn),
    ``fork`` (ddp_fork, ddp_notebook) or ``forkserver``; ``None`` for any other strategy.

    Why: ``DDPStrategy`` takes ``start_method`` but keeps it only as the private ``_start_method``;
    neither the strategy nor its launcher exposes it (Lightning 2.6.6). It names the strategy the
    user picked in an error message.
    """
    strategy = trainer.strategy
    return strategy._start_method if isinstance(strategy, DDPStrategy) else None


def move_callback_first(trainer: pl.Trainer, callback: pl.Callback) -> None:
    """Make ``callback`` the first one the Trainer calls, from the hook that is running on.

    Why: a LightningModule's ``configure_callbacks`` are appended after the Trainer's, and Lightning
    has no public way to order callbacks. This edits ``trainer.callbacks`` in place, relying on every
    hook iterating that same list anew (``trainer/call.py: _call_callback_hooks``), so a move from
    position i to the front during the ``setup`` loop leaves every other callback's turn intact
    (Lightning 2.6.6).
    """
    callbacks = trainer.callbacks
    if callback in callbacks and callbacks[0] is not callback:
        callbacks.remove(callback)
        callbacks.insert(0, callback)


def global_rank() -> int:
    """This process's global rank, also before a Trainer exists: 0 outside a distributed run.

    Why: ``trainer.global_rank`` needs the Trainer and ``torch.distributed`` the process group, but a
    DDP process must know its rank before either (only rank 0 writes the run's files). Lightning
    keeps it in ``rank_zero_only.rank``: set on import from the launch environment (``RANK``,
    ``LOCAL_RANK``, ``SLURM_PROCID``, ``JSM_NAMESPACE_RANK``) and again by the DDP strategy's setup.
    lightning-utilities documents the attribute, Lightning does not (Lightning 2.6.6,
    lightning-utilities 0.15).
    """
    return rank_zero_only.rank
