"""One ``POST /predict`` request of ``yolotl-serve`` read into an image and its options, or refused.

Everything a client can get wrong is checked here, in the HTTP process, before the request joins a
batch: a refused upload never reaches the model, so it cannot fail the other requests batched with it.
Each refusal is a :class:`RequestError` with an HTTP status and one line naming the problem and the fix:

* 400: an empty body, JSON that does not parse, base64 that does not decode, a truncated or corrupt image;
* 413: a body over ``limits.max_body_bytes``, an image over ``limits.max_pixels``;
* 415: a body or upload that is not an image, a content type other than multipart or JSON;
* 422: a missing ``image``, an unknown field, an option out of range, a class the model does not know.

The image is decoded with Pillow (EXIF orientation applied, any mode made RGB): the PIL form of
:data:`yolotl.inference.preprocess.ImageInput`, which gives the pixels ``predict(path)`` reads.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from yolotl.errors import ConfigError, YolotlError, first_line
from yolotl.inference.predict import resolve_classes
from yolotl.inference.preprocess import load_image

IMAGE_FIELD = "image"
OPTION_FIELDS = ("score_threshold", "iou_threshold", "max_detections", "classes")
USAGE = (f"send the image as multipart field '{IMAGE_FIELD}' or as JSON {{\"{IMAGE_FIELD}\": \"<base64>\"}}, "
         f"with optional {', '.join(OPTION_FIELDS)}")


class RequestError(YolotlError):
    """A request the server refuses: ``status`` is the HTTP status (4xx), the message one line."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Limits:
    """What one request may carry: body size in bytes, image size in pixels (width x height)."""

    max_body_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000


@dataclass(frozen=True)
class Options:
    """``predict()``'s per-request settings; hashable, so a batch groups requests that share them."""

    score_threshold: float = 0.25
    iou_threshold: float = 0.6
    max_detections: int = 300
    classes: tuple[int, ...] | None = None  # class ids, resolved from names or ids

    def as_kwargs(self) -> dict[str, Any]:
        return {"score_threshold": self.score_threshold, "iou_threshold": self.iou_threshold,
                "max_detections": self.max_detections,
                "classes": None if self.classes is None else list(self.classes)}


def read_fields(content_type: str, body: bytes, form: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The request's fields: ``form`` (already parsed multipart: upload objects with ``.file``) or the JSON
    ``body``; the image as bytes either way."""
    if not body:
        raise RequestError(400, f"empty request body; {USAGE}")
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "multipart/form-data" and form is not None:
        fields = {}
        for key, value in form.multi_items() if hasattr(form, "multi_items") else form.items():
            if key in fields:
                raise RequestError(422, f"field '{key}' given twice; {USAGE}")
            fields[key] = value.file.read() if hasattr(value, "file") else value
        fields = _known(fields)
        if isinstance(fields[IMAGE_FIELD], str):
            raise RequestError(422, f"multipart field '{IMAGE_FIELD}' is text, not a file upload; "
                                    f"send the file (curl -F {IMAGE_FIELD}=@photo.jpg)")
        return fields
    if kind in ("application/json", "") or kind.endswith("+json"):
        try:
            fields = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise RequestError(400, f"the body is not valid JSON ({first_line(err)}); {USAGE}") from None
        if not isinstance(fields, dict):
            raise RequestError(422, f"the JSON body is a {type(fields).__name__}, not an object; {USAGE}")
        fields = _known(fields)
        if IMAGE_FIELD in fields:
            fields[IMAGE_FIELD] = _from_base64(fields[IMAGE_FIELD])
        return fields
    raise RequestError(415, f"unsupported content type '{kind}'; {USAGE}")


def _known(fields: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(fields) - {IMAGE_FIELD, *OPTION_FIELDS})
    if unknown:
        raise RequestError(422, f"unknown field '{unknown[0]}'; {USAGE}")
    if IMAGE_FIELD not in fields:
        raise RequestError(422, f"no '{IMAGE_FIELD}' field; {USAGE}")
    return fields


def _from_base64(value: Any) -> bytes:
    if not isinstance(value, str):
        raise RequestError(422, f"JSON field '{IMAGE_FIELD}' must be a base64 string, got {type(value).__name__}")
    if value.startswith("data:") and "," in value:  # a data URL, as a browser's FileReader gives
        value = value.split(",", 1)[1]
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as err:
        raise RequestError(400, f"JSON field '{IMAGE_FIELD}' is not valid base64 ({first_line(err)})") from None


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """Upload bytes -> HWC uint8 RGB, checked: an image at all, within ``max_pixels``, not truncated."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise RequestError(400, f"the '{IMAGE_FIELD}' upload is empty; {USAGE}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise RequestError(415, f"the '{IMAGE_FIELD}' upload is not an image Pillow can read "
                                f"(JPEG, PNG, BMP, WebP, TIFF, ...)") from None
    width, height = image.size
    if width * height > max_pixels:
        raise RequestError(413, f"image of {width}x{height} = {width * height} pixels is over the limit of "
                                f"{max_pixels}; shrink it (or start the server with a larger max_pixels)")
    try:
        image.load()  # a truncated JPEG / PNG fails here instead of giving grey pixels
        return load_image(image)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise RequestError(400, f"the '{IMAGE_FIELD}' upload is a truncated or corrupt image "
                                f"({first_line(err)}); send the whole file") from None
    except ConfigError as err:
        raise RequestError(415, f"the '{IMAGE_FIELD}' upload cannot be read as an image ({err})") from None


def read_options(fields: Mapping[str, Any], class_names: Sequence[str], defaults: Options) -> Options:
    """The request's thresholds and class filter (form strings or JSON values), checked."""
    classes = _classes(fields.get("classes"), class_names)
    return Options(
        score_threshold=_number(fields, "score_threshold", defaults.score_threshold, float, 0.0, 1.0),
        iou_threshold=_number(fields, "iou_threshold", defaults.iou_threshold, float, 0.0, 1.0),
        max_detections=_number(fields, "max_detections", defaults.max_detections, int, 1, 100_000),
        classes=defaults.classes if classes is None else classes,
    )


def _number(fields: Mapping[str, Any], key: str, default: Any, kind: type, low: float, high: float) -> Any:
    value = fields.get(key)
    if value is None or value == "":
        return default
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
        if kind is int:
            if not number.is_integer():
                raise ValueError
            number = int(number)
    except (TypeError, ValueError, OverflowError):
        raise RequestError(422, f"{key}={value!r} is not a{'n integer' if kind is int else ' number'}") from None
    if not low <= number <= high:
        raise RequestError(422, f"{key}={number} is outside {low:g}..{high:g}")
    return number


def _classes(value: Any, class_names: Sequence[str]) -> tuple[int, ...] | None:
    """Names or ids (a JSON list, or a comma-separated string) -> ids; unknown ones are refused."""
    if value is None or value == "" or value == []:
        return None
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list):
        items = [items]
    parsed: list[int | str] = []
    for item in items:
        if isinstance(item, str):
            item = item.strip()
            parsed.append(int(item) if item.isdigit() and item not in class_names else item)
        else:
            parsed.append(item)
    try:
        return tuple(resolve_classes(parsed, class_names) or ())
    except ConfigError as err:
        raise RequestError(422, str(err)) from None
