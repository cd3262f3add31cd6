"""yolotl-serve as users meet it: the real command on a free local port, its answers against ``predict()``,
every bad upload refused with one line while the server keeps serving, and the page driven in Chromium."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

from yolotl.api.serve_client import get, multipart_body, post, post_image
from yolotl.api.serve_request import Limits, Options, RequestError, decode_image, read_fields, read_options

CLASSES = ["circle", "square"]


def _jpeg(width: int = 64, height: int = 48) -> bytes:
    from PIL import Image

    pixels = (np.random.default_rng(0).random((height, width, 3)) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG")
    return buffer.getvalue()


# --- reading a request, no server -------------------------------------------------------------------------

@pytest.mark.parametrize(("data", "status", "words"), [
    (b"", 400, "empty"),
    (b"GIF89a not really", 415, "not an image"),
    (_jpeg()[: len(_jpeg()) // 2], 400, "truncated"),
], ids=["empty", "not-an-image", "truncated"])
def test_an_upload_that_is_not_a_whole_image_is_refused_with_one_line(data, status, words):
    with pytest.raises(RequestError) as caught:
        decode_image(data, max_pixels=10**6)
    assert caught.value.status == status and words in str(caught.value) and "\n" not in str(caught.value)


def test_an_image_over_the_pixel_limit_is_refused_before_it_is_decoded():
    with pytest.raises(RequestError, match=r"64x48 = 3072 pixels is over the limit of 3000") as caught:
        decode_image(_jpeg(64, 48), max_pixels=3000)
    assert caught.value.status == 413
    assert decode_image(_jpeg(64, 48), max_pixels=3072).shape == (48, 64, 3)


def test_fields_and_options_are_read_from_json_and_checked():
    body = json.dumps({"image": "data:image/jpeg;base64," + base64.b64encode(b"abc").decode(),
                       "classes": ["square", 0], "score_threshold": 0.5}).encode()
    fields = read_fields("application/json", body)
    assert fields["image"] == b"abc"
    assert read_options(fields, CLASSES, Options()) == Options(score_threshold=0.5, classes=(1, 0))
    assert read_options({"classes": "1,circle", "max_detections": "7"}, CLASSES, Options()).classes == (1, 0)
    for fields, status, words in [
        ({"file": "x"}, 422, "unknown field 'file'"),
        ({"score_threshold": 0.5}, 422, "no 'image' field"),
        ({"image": "%%%"}, 400, "not valid base64"),
    ]:
        with pytest.raises(RequestError, match=words) as caught:
            read_fields("application/json", json.dumps(fields).encode())
        assert caught.value.status == status
    for options, words in [({"classes": ["triangle"]}, "unknown class 'triangle'"),
                           ({"classes": "5"}, "unknown class 5"),
                           ({"iou_threshold": "1.5"}, "outside 0..1"),
                           ({"max_detections": "2.5"}, "not an integer"),
                           ({"score_threshold": "nan"}, "outside")]:
        with pytest.raises(RequestError, match=words) as caught:
            read_options(options, CLASSES, Options())
        assert caught.value.status == 422
    with pytest.raises(RequestError, match="is text, not a file upload") as caught:
        read_fields("multipart/form-data; boundary=x", b"--x", {"image": "photo.jpg"})
    assert caught.value.status == 422
    with pytest.raises(RequestError, match="not valid JSON") as caught:
        read_fields("application/json", b"{not json")
    assert caught.value.status == 400
    with pytest.raises(RequestError, match="unsupported content type 'text/plain'") as caught:
        read_fields("text/plain", b"hello")
    assert caught.value.status == 415


def test_a_model_that_cannot_be_loaded_stops_the_command_with_one_line(tmp_path):
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(b"not a checkpoint")
    done = subprocess.run([_command(), f"ckpt={broken}", f"port={_free_port()}"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("yolotl: error: ") and "broken.ckpt" in errors[0], done.stderr


# --- the real server --------------------------------------------------------------------------------------

def _command() -> str:
    found = shutil.which("yolotl-serve") or str(Path(sys.executable).parent / "yolotl-serve")
    assert Path(found).exists(), "yolotl-serve is not installed: pip install -e '.[dev]'"
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(trained_run, tmp_path_factory):
    """``yolotl-serve`` on a free port, batching up to 4 requests; yields its URL once /health says ok."""
    port = _free_port()
    log = tmp_path_factory.mktemp("serve") / "server.log"
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    with open(log, "w") as out:
        process = subprocess.Popen([_command(), f"ckpt={trained_run.checkpoint}", f"port={port}",
                                    "max_batch_size=4", "batch_timeout=0.05", "max_pixels=4000000", "device=cpu"],
                                   stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, f"yolotl-serve exited: {log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"yolotl-serve not healthy in 180 s: {log.read_text()[-3000:]}"
            try:
                if get(f"{url}/health", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the server, its HTTP process and its model worker
        process.wait(timeout=30)


def _images(trained_run, count: int) -> list[Path]:
    return sorted((trained_run.data_root / "test" / "images").glob("*.png"))[:count]


def _assert_same(answer: dict, expected: dict, class_names: list[str]) -> None:
    assert answer["labels"] == expected["labels"].tolist()
    assert answer["class_names"] == [class_names[i] for i in answer["labels"]]
    torch.testing.assert_close(torch.tensor(answer["scores"]).reshape(-1), expected["scores"].float(),
                               atol=1e-3, rtol=0)
    torch.testing.assert_close(torch.tensor(answer["boxes"]).reshape(-1, 4), expected["boxes"].float(),
                               atol=0.05, rtol=0)


@pytest.mark.slow
def test_concurrent_requests_are_batched_and_each_gets_what_predict_gives(server, trained_run):
    """Eight requests at once, half with their own thresholds and class filter: batched by the server,
    each answer equals ``yolotl.load(ckpt).predict()`` on the same file with the same options."""
    import yolotl

    model = yolotl.load(trained_run.checkpoint)
    images = _images(trained_run, 8)
    option_sets = [{}, {"score_threshold": 0.5, "classes": [model.class_names[0]]}] * 4

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda pair: post_image(server, pair[0], **pair[1]), zip(images, option_sets)))
    for path, options, (status, answer) in zip(images, option_sets, answers):
        assert status == 200, answer
        expected = model.predict(str(path), **options)[0]
        _assert_same(answer, expected, model.class_names)
        assert answer["model"]["class_names"] == model.class_names
        assert answer["image"] == {"height": 128, "width": 128}
    assert sum(len(answer["boxes"]) for _, answer in answers) > 0, "the trained model found nothing"
    assert max(answer["batch"] for _, answer in answers) > 1, "no two requests shared a batch"

    status, metadata = get(f"{server}/metadata")
    assert status == 200 and metadata["class_names"] == model.class_names and metadata["task"] == "detect"
    assert metadata["max_pixels"] == 4_000_000
    path = images[0]
    body = json.dumps({"image": base64.b64encode(path.read_bytes()).decode(), "max_detections": 2}).encode()
    status, answer = post(f"{server}/predict", body, "application/json")
    assert status == 200, answer
    _assert_same(answer, model.predict(str(path), max_detections=2)[0], model.class_names)


@pytest.mark.slow
def test_each_bad_request_gets_its_4xx_in_one_line_and_the_server_keeps_serving(server, trained_run):
    from PIL import Image

    good = _images(trained_run, 1)[0]
    png = good.read_bytes()
    huge = io.BytesIO()
    Image.new("RGB", (2100, 2000)).save(huge, "PNG")  # 4.2 M pixels: over the server's max_pixels=4000000
    wrong_field, wrong_type = multipart_body({}, {"file": png}), multipart_body({}, {"image": b"%PDF-1.4 not"})
    cases = [
        ("not an image", lambda: post_image(server, b"plain text, not pixels"), 415, "not an image"),
        ("empty body", lambda: post(f"{server}/predict", b"", "application/json"), 400, "empty request body"),
        ("truncated", lambda: post_image(server, _jpeg(320, 240)[:1500]), 400, "truncated"),
        ("huge", lambda: post_image(server, huge.getvalue()), 413, "over the limit of 4000000"),
        ("wrong field", lambda: post(f"{server}/predict", *wrong_field), 422, "unknown field 'file'"),
        ("not a pdf either", lambda: post(f"{server}/predict", *wrong_type), 415, "not an image"),
        ("unknown class", lambda: post_image(server, png, classes="unicorn"), 422, "unknown class 'unicorn'"),
        ("bad json", lambda: post(f"{server}/predict", b"{", "application/json"), 400, "not valid JSON"),
    ]
    for name, send, status, words in cases:
        got, answer = send()
        assert got == status, (name, got, answer)
        assert words in answer["detail"] and "\n" not in answer["detail"], (name, answer)
        got, answer = post_image(server, png)
        assert got == 200 and "boxes" in answer, (f"after {name}", got, answer)


@pytest.mark.slow
def test_the_page_draws_what_the_api_answers(server, trained_run, tmp_path):
    """The page at "/" in headless Chromium (Debian's): upload an image through its file input, read the
    drawn labels from its list, compare them with the API's answer; the screenshot is kept."""
    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)") if not os.environ.get("CI") \
            else pytest.fail("CI installs chromium (.ci/run); it is missing")
    image = _images(trained_run, 1)[0]
    status, expected = post_image(server, image)
    assert status == 200 and expected["boxes"], expected

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=chromium, headless=True,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        try:
            page = browser.new_page()
            page.goto(f"{server}/")
            page.wait_for_function("document.getElementById('model').textContent.includes('px input')")
            page.set_input_files("#file", str(image))
            page.wait_for_function("document.body.dataset.state === 'done'", timeout=30_000)
            drawn = page.eval_on_selector_all("#detections li", _LABELS)
            canvas = page.eval_on_selector("#canvas", "c => [c.width, c.height]")
            latency = page.inner_text("#latency")
            shot = tmp_path / "serve_page.png"
            page.screenshot(path=str(shot), full_page=True)
            # the slider asks again with its threshold
            page.eval_on_selector("#score", "s => { s.value = '0.5'; s.dispatchEvent(new Event('change')); }")
            page.wait_for_function("document.body.dataset.state === 'done'", timeout=30_000)
            drawn_at_half = page.eval_on_selector_all("#detections li", _LABELS)
        finally:
            browser.close()
    print(f"page screenshot: {shot}")
    assert [name for name, _ in drawn] == expected["class_names"]
    assert [score for _, score in drawn] == pytest.approx(expected["scores"], abs=1e-6)
    assert canvas[0] > 0 and canvas[1] > 0 and latency.endswith("ms)") and shot.stat().st_size > 1000
    status, at_half = post_image(server, image, score_threshold=0.5)
    assert [name for name, _ in drawn_at_half] == at_half["class_names"]
    assert all(score >= 0.5 for _, score in drawn_at_half)


_LABELS = "items => items.map(i => [i.dataset.class, Number(i.dataset.score)])"


# --- the model worker, without a server -------------------------------------------------------------------

class _RecordingPredictor:
    class_names = CLASSES

    def __init__(self) -> None:
        self.calls: list[tuple[int, dict]] = []

    def predict(self, images, batch_size, **options):
        self.calls.append((len(images), options))
        detections = []
        for image in images:
            mask = torch.zeros((1, *image.shape[:2]), dtype=torch.bool)
            mask[0, 1:3, 2:5] = True
            detections.append({"boxes": torch.tensor([[2.0, 1.0, 5.0, 3.0]]), "labels": torch.tensor([1]),
                               "scores": torch.tensor([options["score_threshold"]]), "masks": mask})
        return detections


def test_a_batch_runs_one_predict_per_set_of_options_and_answers_each_request_with_its_own():
    pytest.importorskip("litserve")
    from pycocotools import mask as mask_utils

    from yolotl.api.serve_api import DetectorAPI, UploadSpec

    api = DetectorAPI("unused.ckpt", UploadSpec({"class_names": CLASSES}, Limits(), Options()), max_batch_size=4)
    api.predictor = _RecordingPredictor()
    image = np.zeros((6, 8, 3), np.uint8)
    options = [Options(), Options(score_threshold=0.5, classes=(1,)), Options(), Options(score_threshold=0.5,
                                                                                          classes=(1,))]
    outputs = api.predict([{"image": image, "options": o} for o in options])
    assert sorted(api.predictor.calls, key=lambda c: c[1]["score_threshold"]) == [
        (2, {"score_threshold": 0.25, "iou_threshold": 0.6, "max_detections": 300, "classes": None}),
        (2, {"score_threshold": 0.5, "iou_threshold": 0.6, "max_detections": 300, "classes": [1]})]
    answers = [api.encode_response(output) for output in outputs]
    assert [a["scores"] for a in answers] == [[0.25], [0.5], [0.25], [0.5]]
    assert answers[1]["options"]["classes"] == [1] and answers[0]["batch"] == 4
    assert answers[0]["class_names"] == ["square"] and answers[0]["image"] == {"height": 6, "width": 8}
    decoded = mask_utils.decode(answers[0]["masks"][0])
    assert decoded.shape == (6, 8) and decoded.sum() == 6 and decoded[1:3, 2:5].all()
    json.dumps(answers)  # JSON-ready as the endpoint sends it
