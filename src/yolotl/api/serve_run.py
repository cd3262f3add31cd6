"""``yolotl.serve(...)``: a trained model as an HTTP service (LitServe), with a page to try it at ``/``.

    yolotl.serve("outputs/<run>/checkpoints/best.ckpt", port=8000)

Endpoints: ``POST /predict`` (an image as a multipart upload or base64 JSON, per-request thresholds and
class filter; :mod:`yolotl.api.serve_request` says what is refused and how), ``GET /metadata`` (the
model), ``GET /health`` (LitServe's: 200 once the workers have loaded the model), ``GET /`` (the page),
``GET /docs`` (LitServe's OpenAPI page). docs/serving.md has the request and answer formats.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from yolotl.api.serve_request import Limits, Options
from yolotl.errors import ConfigError

PAGE = "serve_page.html"  # package data beside this module: the page at "/", no build step
_ACCELERATORS = {"auto": "auto", "cpu": "cpu", "cuda": "cuda", "gpu": "cuda", "mps": "mps"}


def serve(
    ckpt: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    device: str = "auto",
    max_batch_size: int = 8,
    batch_timeout: float = 0.01,
    workers_per_device: int = 1,
    max_pixels: int = 40_000_000,
    max_body_mb: float = 20.0,
    score_threshold: float = 0.25,
    iou_threshold: float = 0.6,
    max_detections: int = 300,
    timeout: float = 30.0,
    log_level: str = "warning",
) -> None:
    """Serve ``ckpt`` (.ckpt, .onnx, OpenVINO .xml: what :func:`yolotl.inference.loading.load_predictor` opens)
    until interrupted.

    The model is opened once here first, so a file that cannot be loaded stops the call with its
    :class:`~yolotl.CheckpointError` (one line under ``yolotl-serve``) before any port is opened; each
    worker then loads its own copy on its device (``device="auto"``: a GPU when there is one, else the
    CPU). Concurrent requests are batched, up to ``max_batch_size`` waiting at most ``batch_timeout``
    seconds. ``max_pixels`` and ``max_body_mb`` bound one upload; the thresholds are the defaults a
    request may override. ``host`` is one of 127.0.0.1 (this machine only), 0.0.0.0 or ``::``. A semantic
    segmenter (``task=semantic``) is refused with a ConfigError: it predicts images for now.
    """
    _check_address(host, port)
    server = build_server(ckpt, device=device, max_batch_size=max_batch_size, batch_timeout=batch_timeout,
                          workers_per_device=workers_per_device, max_pixels=max_pixels, max_body_mb=max_body_mb,
                          score_threshold=score_threshold, iou_threshold=iou_threshold,
                          max_detections=max_detections, timeout=timeout)
    server.run(host=host, port=int(port), log_level=log_level, generate_client_file=False,
               num_api_servers=1)


def build_server(
    ckpt: str | Path,
    device: str = "auto",
    max_batch_size: int = 8,
    batch_timeout: float = 0.01,
    workers_per_device: int = 1,
    max_pixels: int = 40_000_000,
    max_body_mb: float = 20.0,
    score_threshold: float = 0.25,
    iou_threshold: float = 0.6,
    max_detections: int = 300,
    timeout: float = 30.0,
) -> Any:
    """The ``litserve.LitServer`` :func:`serve` runs, with the page and ``/metadata`` added (not started)."""
    litserve = _import_litserve()
    from fastapi.responses import HTMLResponse, JSONResponse

    from yolotl.api.serve_api import DetectorAPI, UploadSpec, model_metadata
    from yolotl.inference.loading import load_predictor

    if device not in _ACCELERATORS:
        raise ConfigError(f"device={device!r} is not one of {sorted(_ACCELERATORS)}")
    if max_batch_size < 1 or batch_timeout < 0 or workers_per_device < 1:
        raise ConfigError("max_batch_size and workers_per_device must be >= 1 and batch_timeout >= 0")
    if max_pixels < 1 or max_body_mb <= 0:
        raise ConfigError(f"max_pixels={max_pixels} and max_body_mb={max_body_mb} must be positive")
    defaults = Options(float(score_threshold), float(iou_threshold), int(max_detections))
    predictor = load_predictor(ckpt, device="cpu")  # fails here, before any port opens
    if getattr(predictor, "semantic", False):
        raise ConfigError(f"{ckpt} is a semantic segmenter (task=semantic), which predicts images for now, not "
                          "through yolotl-serve; use yolotl-predict ckpt=... source=<images> or yolotl.load(...)"
                          ".predict()")
    metadata = model_metadata(predictor, ckpt)
    limits = Limits(max_body_bytes=int(max_body_mb * 1024 * 1024), max_pixels=int(max_pixels))
    metadata.update(max_pixels=limits.max_pixels, max_body_bytes=limits.max_body_bytes,
                    max_batch_size=int(max_batch_size), defaults=defaults.as_kwargs())
    spec = UploadSpec(metadata, limits, defaults)
    api = DetectorAPI(str(ckpt), spec, max_batch_size=int(max_batch_size), batch_timeout=float(batch_timeout))
    server = litserve.LitServer(api, accelerator=_ACCELERATORS[device], workers_per_device=int(workers_per_device),
                                timeout=float(timeout), model_metadata=metadata)
    page = resources.files("yolotl.api").joinpath(PAGE).read_text(encoding="utf-8")
    # LitServe answers "/" with a plain "litserve running": FastAPI takes the first route that matches,
    # so that route goes and the page takes its place.
    server.app.router.routes[:] = [r for r in server.app.router.routes if getattr(r, "path", None) != "/"]
    server.app.add_api_route("/", lambda: HTMLResponse(page), methods=["GET"], include_in_schema=False)
    server.app.add_api_route("/metadata", lambda: JSONResponse(metadata), methods=["GET"])
    return server


def _check_address(host: str, port: int) -> None:
    if host not in ("127.0.0.1", "0.0.0.0", "::"):
        raise ConfigError(f"host={host!r}: LitServe binds 127.0.0.1 (this machine only), 0.0.0.0 or '::'")
    if not str(port).isdigit() or not 1024 <= int(port) <= 65535:
        raise ConfigError(f"port={port!r} must be a number from 1024 to 65535")


def _import_litserve() -> Any:
    from importlib.util import find_spec

    # python-multipart: Starlette's form parser, for uploads (module python_multipart, formerly multipart)
    if find_spec("litserve") is None or (find_spec("python_multipart") is None and find_spec("multipart") is None):
        raise ConfigError("yolotl-serve needs LitServe and python-multipart: pip install 'yolotl[serve]'")
    import litserve

    return litserve
