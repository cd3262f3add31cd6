"""Benchmark: ``yolotl-serve`` under a bounded load on 127.0.0.1, batch 1 against the default batching.

For each ``--batch-sizes`` value a fresh server is started through the real command (``yolotl-serve
max_batch_size=B``), warmed up, then ``--clients`` threads send ``--requests`` uploads in all (the images
round-robin, each request's latency timed from send to answer). Printed per server: requests, errors
(any non-200), p50 / p95 latency, requests per second, the mean batch the answers report, and the
memory (PSS) of the server's processes (main, HTTP, model worker) after a concurrent warm-up burst, after a
third of the run and at its end (flat from the third on: no leak), with the
machine's load average beside them. Every loop is bounded: a fixed request count, a per-request timeout
and ``--max-seconds`` for the whole run; only 127.0.0.1 is contacted.

    python bench/serve_load.py --ckpt outputs/<run>/checkpoints/best.ckpt --images 'bccd/JPEGImages/*.jpg'
    python bench/serve_load.py --ckpt best.ckpt --clients 2 --requests 10 --batch-sizes 1,4   # a quick check

Without ``--images`` it sends synthetic 640x480 images (the synthetic set's shapes, resized).
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from yolotl.api.serve_client import get, post_image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", required=True, help="a .ckpt or .onnx model")
    parser.add_argument("--images", help="a glob of images to send (default: synthetic 640x480 images)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=300, help="requests per server, all clients together")
    parser.add_argument("--batch-sizes", default="1,8", help="max_batch_size of each server, comma-separated")
    parser.add_argument("--batch-timeout", type=float, default=0.01)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--max-seconds", type=float, default=900, help="stop sending after this long, per server")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()

    images = _images(args.images)
    print(f"{platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"{len(images)} images, {args.clients} clients, {args.requests} requests per server")
    rows = []
    for batch in [int(b) for b in args.batch_sizes.split(",")]:
        rows.append(run_server(args, images, batch))
        print(_line(rows[-1]), flush=True)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))


def run_server(args: argparse.Namespace, images: list[bytes], batch: int) -> dict[str, Any]:
    """Start ``yolotl-serve max_batch_size=batch``, load it, stop it; its figures."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    command = [shutil.which("yolotl-serve") or str(Path(sys.executable).parent / "yolotl-serve"),
               f"ckpt={args.ckpt}", f"port={port}", f"max_batch_size={batch}", f"batch_timeout={args.batch_timeout}",
               f"device={args.device}"]
    with tempfile.TemporaryFile("w+") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            _wait_healthy(url, server, log)
            # warm-up: a concurrent burst, so the batched path's buffers are allocated before memory is read
            _load(url, images, args.clients, 4 * args.clients, args.max_seconds)
            memory_start, load_start = _pss_mb(server.pid), os.getloadavg()[0]
            first = args.requests // 3  # memory after a third of the run and at the end: a plateau or a leak
            latencies, statuses, batches, wall = _load(url, images, args.clients, first, args.max_seconds)
            memory_third = _pss_mb(server.pid)
            rest = _load(url, images, args.clients, args.requests - first, args.max_seconds)
            latencies, statuses, batches, wall = latencies + rest[0], statuses + rest[1], batches + rest[2], wall + rest[3]
            memory_end, load_end = _pss_mb(server.pid), os.getloadavg()[0]
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=60)
    ok = [t for t, s in zip(latencies, statuses) if s == 200]
    return {
        "max_batch_size": batch, "requests": len(statuses), "errors": sum(s != 200 for s in statuses),
        "p50_ms": float(np.percentile(ok, 50) * 1000) if ok else None,
        "p95_ms": float(np.percentile(ok, 95) * 1000) if ok else None,
        "requests_per_s": len(statuses) / wall, "mean_batch": float(np.mean(batches)) if batches else None,
        "pss_start_mb": memory_start, "pss_third_mb": memory_third, "pss_end_mb": memory_end, "load_start": load_start, "load_end": load_end,
    }


def _load(url: str, images: list[bytes], clients: int, requests: int,
          max_seconds: float) -> tuple[list[float], list[int], list[int], float]:
    deadline = time.monotonic() + max_seconds

    def one(index: int) -> tuple[float, int, int]:
        if time.monotonic() > deadline:
            return 0.0, -1, 0
        start = time.perf_counter()
        try:
            status, answer = post_image(url, images[index % len(images)], timeout=120)
        except OSError:
            status, answer = -2, {}
        return time.perf_counter() - start, status, int(answer.get("batch", 0))

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(one, range(requests)))
    wall = time.perf_counter() - start
    return [r[0] for r in results], [r[1] for r in results], [r[2] for r in results if r[2]], wall


def _images(pattern: str | None) -> list[bytes]:
    if pattern:
        paths = sorted(glob.glob(pattern))
        if not paths:
            raise SystemExit(f"no images match {pattern!r}")
        return [Path(p).read_bytes() for p in paths[:64]]
    from PIL import Image

    import yolotl

    root = yolotl.make_synthetic_dataset(Path(tempfile.gettempdir()) / "yolotl-serve-load", 8, 2, 16, 256)
    out = []
    for path in sorted((root / "test" / "images").glob("*.png")):
        buffer = io.BytesIO()
        Image.open(path).convert("RGB").resize((640, 480)).save(buffer, "JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


def _wait_healthy(url: str, server: subprocess.Popen, log: Any, limit: float = 300) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if server.poll() is not None:
            log.seek(0)
            raise SystemExit(f"yolotl-serve exited: {log.read()[-2000:]}")
        try:
            if get(f"{url}/health", timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"yolotl-serve not healthy after {limit:.0f} s")


def _pss_mb(pid: int) -> float:
    """Memory of the server's process group (main, HTTP, model worker), MB: the sum of each process's
    proportional set size (Linux /proc smaps_rollup), so pages the forked HTTP process shares count once."""
    group, total = os.getpgid(pid), 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != group:
                continue
            for line in (entry / "smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except (OSError, ProcessLookupError, ValueError):
            continue
    return total / 1024


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _line(row: dict[str, Any]) -> str:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f} ms"

    return (f"max_batch_size={row['max_batch_size']}: {row['requests']} requests, {row['errors']} errors, "
            f"p50 {ms(row['p50_ms'])}, p95 {ms(row['p95_ms'])}, {row['requests_per_s']:.1f} req/s, "
            f"mean batch {row['mean_batch'] or 0:.1f}, PSS {row['pss_start_mb']:.0f} -> {row['pss_third_mb']:.0f} (a third) "
            f"-> {row['pss_end_mb']:.0f} MB, "
            f"load {row['load_start']:.1f} -> {row['load_end']:.1f}")


if __name__ == "__main__":
    main()
