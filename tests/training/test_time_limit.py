"""trainer.max_time is per job: a run stopped by it says so, and a resumed run gets the whole limit again."""

import pytest

from yolotl import DetectionModule, WarmupCosine, adamw
from yolotl.models import create_detector
from yolotl.training.callbacks import TimeLimitPerJob, stop_reason

from tests.training.conftest import fit

LIMIT = {"seconds": 2}


def _module() -> DetectionModule:
    detector = create_detector("efficientnet_lite0", num_classes=2, pretrained=False, image_size=64, neck_width=16)
    return DetectionModule(detector, optimizer=adamw(lr=1e-3), schedule=WarmupCosine(warmup_epochs=0))


@pytest.mark.slow
def test_a_resumed_run_gets_its_own_max_time(tmp_path):
    first = fit(_module(), [], epochs=10_000, max_time=LIMIT, limit_val_batches=0)
    assert stop_reason(first) == "max_time" and first.current_epoch < 10_000
    checkpoint = tmp_path / "last.ckpt"
    first.save_checkpoint(checkpoint)

    again = fit(_module(), [], epochs=10_000, max_time=LIMIT, limit_val_batches=0, ckpt=str(checkpoint))
    assert again.global_step == first.global_step  # Lightning alone: the time was spent, it stops at once
    resumed = fit(_module(), [TimeLimitPerJob()], epochs=10_000, max_time=LIMIT, limit_val_batches=0,
                  ckpt=str(checkpoint))
    assert resumed.global_step > first.global_step and stop_reason(resumed) == "max_time"

