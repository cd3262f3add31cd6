"""A minimal client for ``yolotl-serve`` (standard library only): post an image, get the JSON answer.

    status, answer = post_image("http://127.0.0.1:8000", "photo.jpg", score_threshold=0.4)

Used by the tests and ``bench/serve_load.py``; any HTTP client works the same way (docs/serving.md).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any


def post_image(url: str, image: str | Path | bytes, field: str = "image", timeout: float = 60.0,
               **options: Any) -> tuple[int, dict[str, Any]]:
    """POST ``image`` (a path or the file's bytes) as a multipart upload to ``<url>/predict``, with
    ``options`` as form fields (``classes`` a list or a comma-separated string). Returns the HTTP status and
    the JSON answer (``{"detail": ...}`` for a refused request)."""
    data = Path(image).read_bytes() if isinstance(image, (str, Path)) else bytes(image)
    fields = {k: ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v) for k, v in options.items()}
    body, content_type = multipart_body(fields, {field: data})
    return post(f"{url.rstrip('/')}/predict", body, content_type, timeout)


def multipart_body(fields: dict[str, str], files: dict[str, bytes]) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body with text ``fields`` and file uploads, and its Content-Type."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, data in files.items():
        head = (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{name}"\r\n'
                f"Content-Type: application/octet-stream\r\n\r\n")
        parts.append(head.encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def post(url: str, body: bytes, content_type: str, timeout: float = 60.0) -> tuple[int, dict[str, Any]]:
    """POST ``body``; the status and the JSON answer (a non-JSON answer as ``{"detail": <text>}``)."""
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, _json(response.read())
    except urllib.error.HTTPError as err:
        return err.code, _json(err.read())


def get(url: str, timeout: float = 10.0) -> tuple[int, Any]:
    """GET ``url``: the status and the JSON answer (text when it is not JSON)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            text = response.read()
            status = response.status
    except urllib.error.HTTPError as err:
        status, text = err.code, err.read()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text.decode(errors="replace")


def _json(raw: bytes) -> dict[str, Any]:
    try:
        return json.loads(raw)
    except ValueError:
        return {"detail": raw.decode(errors="replace")}
