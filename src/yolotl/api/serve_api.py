"""The LitServe side of ``yolotl-serve``: the model worker (:class:`DetectorAPI`) and the upload endpoint
(:class:`UploadSpec`). Imported only by :func:`yolotl.api.serve_run.serve` (LitServe is an optional extra).

Why a spec: LitServe's plain endpoint hands the worker what ``request.json()`` / ``request.form()`` give,
so an empty body or bad JSON becomes a 500, an upload over 1 MB (a spooled temporary file) cannot be
pickled to the worker, and a bad image refused in ``decode_request`` fails every request batched with it.
A :class:`litserve.specs.base.LitSpec` is LitServe's own way to own an endpoint (its OpenAI specs use it):
the endpoint reads and checks the request here, in the HTTP process (:mod:`yolotl.api.serve_request`),
and only decoded images with checked options join the queue that LitServe batches for the worker.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import litserve as ls
import numpy as np
from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse
from litserve.specs.base import LitSpec
from litserve.utils import LitAPIStatus, ResponseBufferItem

from yolotl.allocator import return_freed_memory
from yolotl.api.serve_request import Limits, Options, RequestError, decode_image, read_fields, read_options


class DetectorAPI(ls.LitAPI):
    """Loads the model in each worker and runs ``predict()`` on batches of checked requests.

    A batch groups its requests by their options (thresholds, class filter): one ``predict()`` call per
    group, so every request gets the answer it would get alone, and requests with the default options,
    the usual case, share one forward pass.
    """

    def __init__(self, model_path: str, spec: UploadSpec, max_batch_size: int = 8, batch_timeout: float = 0.01):
        super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout, spec=spec)
        self.model_path = model_path

    def setup(self, device: str) -> None:
        import signal

        from yolotl.inference.loading import load_predictor

        # Ctrl+C reaches every process of the terminal's group: the server's main process stops this worker
        # (LitServe's shutdown), so the worker itself ignores it rather than print a KeyboardInterrupt trace.
        signal.signal(signal.SIGINT, signal.SIG_IGN)

        self.predictor = load_predictor(self.model_path, device=device)

    def decode_request(self, request: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return request  # already read and checked by UploadSpec, in the HTTP process

    def batch(self, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return inputs

    def predict(self, inputs: list[dict[str, Any]] | dict[str, Any], **kwargs: Any) -> Any:
        if isinstance(inputs, dict):  # max_batch_size=1: LitServe's unbatched loop passes one request
            return self.predict([inputs])[0]
        groups: dict[Options, list[int]] = {}
        for index, item in enumerate(inputs):
            groups.setdefault(item["options"], []).append(index)
        outputs: list[dict[str, Any]] = [{} for _ in inputs]
        for options, indices in groups.items():
            images = [inputs[i]["image"] for i in indices]
            start = time.perf_counter()
            detections = self.predictor.predict(images, batch_size=len(images), **options.as_kwargs())
            elapsed_ms = (time.perf_counter() - start) * 1000
            for i, det in zip(indices, detections):
                outputs[i] = {"detections": det, "options": options, "inference_ms": elapsed_ms,
                              "batch": len(inputs), "shape": inputs[i]["image"].shape[:2]}
        _return_freed_memory()
        return outputs

    def unbatch(self, output: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return output

    def encode_response(self, output: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return detections_json(output, self.predictor.class_names)


def detections_json(output: dict[str, Any], class_names: Sequence[str]) -> dict[str, Any]:
    """One request's ``predict()`` result as the endpoint's JSON (see docs/serving.md)."""
    det = output["detections"]
    labels = [int(v) for v in det["labels"].tolist()]
    answer: dict[str, Any] = {
        "boxes": [[round(float(v), 3) for v in box] for box in det["boxes"].tolist()],
        "scores": [round(float(v), 5) for v in det["scores"].tolist()],
        "labels": labels,
        "class_names": [class_names[i] for i in labels],
        "image": {"height": int(output["shape"][0]), "width": int(output["shape"][1])},
        "options": output["options"].as_kwargs(),
        "inference_ms": round(output["inference_ms"], 2),
        "batch": output["batch"],
    }
    if "masks" in det:
        from yolotl.evaluation.mask_rle import encode_masks

        answer["masks"] = encode_masks(det["masks"])
    return answer


class UploadSpec(LitSpec):
    """``POST <path>``: reads and checks one upload, queues it for the worker, answers with its detections
    and the model's metadata; a refused request gets its 4xx with one line (``{"detail": ...}``)."""

    def __init__(self, metadata: dict[str, Any], limits: Limits, defaults: Options, path: str = "/predict"):
        super().__init__()
        self.api_path = path
        self.metadata = metadata
        self.limits = limits
        self.defaults = defaults

    def pre_setup(self, lit_api: ls.LitAPI) -> None:
        self.add_endpoint(self.api_path, self.predict_endpoint, ["POST"])

    def decode_request(self, request: Any, context_kwargs: Any = None) -> Any:
        return request

    def encode_response(self, output: Any, context_kwargs: Any = None) -> Any:
        return output

    async def predict_endpoint(self, request: Request) -> JSONResponse:
        received = time.perf_counter()
        try:
            payload = await self.read(request)
        except RequestError as err:
            raise HTTPException(err.status, str(err)) from None
        answer = await self.submit(payload)
        answer["model"] = self.metadata
        answer["server_ms"] = round((time.perf_counter() - received) * 1000, 2)
        return JSONResponse(answer)

    async def read(self, request: Request) -> dict[str, Any]:
        """The request's checked image (decoded in a thread: the event loop keeps serving) and options."""
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.limits.max_body_bytes:
            raise RequestError(413, f"request body of {declared} bytes is over the limit of "
                                    f"{self.limits.max_body_bytes}; send a smaller image")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > self.limits.max_body_bytes:
                raise RequestError(413, f"request body is over the limit of {self.limits.max_body_bytes} "
                                        f"bytes; send a smaller image")
        content_type = request.headers.get("content-type", "")
        form = None
        if content_type.lower().startswith("multipart/form-data") and body:
            form = await _parse_form(request, bytes(body))
        return await asyncio.to_thread(self.check, content_type, bytes(body), form)

    def check(self, content_type: str, body: bytes, form: Any) -> dict[str, Any]:
        """Fields, options and the decoded image of a read request (runs in a thread: JSON parsing and
        image decoding would otherwise hold up the event loop)."""
        fields = read_fields(content_type, body, form)
        options = read_options(fields, self.metadata["class_names"], self.defaults)
        return {"image": decode_image(fields["image"], self.limits.max_pixels), "options": options}

    async def submit(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Queue a checked request for LitServe's batching loop and wait for its answer."""
        uid = uuid.uuid4()
        event = asyncio.Event()
        self.response_buffer[uid] = ResponseBufferItem(event=event)
        self.request_queue.put_nowait((self.response_queue_id, uid, time.monotonic(), payload))
        await event.wait()
        response, status = self.response_buffer.pop(uid).response
        if status == LitAPIStatus.ERROR:
            if isinstance(response, HTTPException):
                raise response
            raise HTTPException(500, "the model failed on this request; see the server log")
        return response


async def _parse_form(request: Request, body: bytes) -> Any:
    """The multipart form of an already-read ``body`` (Starlette's parser, fed the bytes again)."""
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.request", "body": b"", "more_body": False}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        return await Request(request.scope, receive).form(max_part_size=len(body) + 1)
    except Exception as err:  # python-multipart / Starlette raise several types for a malformed form
        from yolotl.errors import first_line

        raise RequestError(400, f"malformed multipart body ({first_line(err)})") from None


def model_metadata(predictor: Any, model_path: str | Path) -> dict[str, Any]:
    """What ``/metadata`` and every answer say about the model (the shared predictor contract only)."""
    from yolotl import __version__

    return {
        "model": Path(model_path).name,
        "runtime": type(predictor).__name__,
        "task": "segment" if getattr(predictor, "segments", False) else "detect",
        "class_names": list(predictor.class_names),
        "image_size": int(predictor.image_size),
        "yolotl_version": __version__,
    }


def _return_freed_memory() -> None:
    """Hand the heap's free pages back to the system after each batch (glibc ``malloc_trim``; elsewhere nothing).

    Batches of 1 to ``max_batch_size`` images need differently sized tensors; glibc keeps what they freed
    in its arenas, fragmented, so a long-running worker's memory creeps up with the mix of batch sizes
    (bench/serve_load.py at max_batch_size=8: +66 MB between a third of a 300-request run and its end
    without this, flat with it). A trim took 1-26 ms after batches of 0.5-2.9 s (416 px, a busy 2-core machine).
    """
    return_freed_memory()
