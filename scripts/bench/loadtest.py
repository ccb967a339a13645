"""The load test behind scripts/loadtest.py: levels of concurrent clients posting /predict to a
server on this machine, each level measured as requests/s, p50/p99 latency and errors.

    loadtest(model=None, url="http://127.0.0.1:8000", texts=texts, levels=[1, 16], ...)

Only loopback addresses are accepted.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence, TypedDict
from urllib.parse import urlparse

from scripts.common.errors import UserError
from scripts.common.files import PROJECT_ROOT

WARMUP_REQUESTS = 4
START_TIMEOUT_S = 300.0


class LevelResult(TypedDict):
    """One JSON line of scripts.loadtest: one concurrency level."""

    concurrency: int
    requests: int
    texts_per_request: int
    seconds: float
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    error_kinds: dict[str, int]  # "http 500", "ReadTimeout", ...: how many


def check_loopback(url: str) -> str:
    """The URL without a trailing slash, or a UserError when it points off this machine."""
    host = urlparse(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback or urlparse(url).scheme not in ("http", "https"):
        raise UserError(
            f"--url {url}: the load test only targets a server on this machine "
            "(http://127.0.0.1:PORT, localhost or [::1])"
        )
    return url.rstrip("/")


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile, e.g. percentile(latencies, 0.99)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)] if ordered else float("nan")


async def run_level(
    *,
    url: str,
    texts: Sequence[str],
    concurrency: int,
    max_requests: int,
    max_seconds: float,
    texts_per_request: int,
) -> LevelResult:
    """Send up to max_requests requests from `concurrency` clients, for at most max_seconds."""
    import httpx

    payloads = [
        {
            "texts": [
                texts[(i * texts_per_request + k) % len(texts)] for k in range(texts_per_request)
            ]
        }
        for i in range(max_requests)
    ]
    latencies: list[float] = []
    errors: dict[str, int] = {}
    next_request = 0

    async with httpx.AsyncClient(
        base_url=url, timeout=120.0, limits=httpx.Limits(max_connections=concurrency)
    ) as client:
        for payload in payloads[:WARMUP_REQUESTS]:
            await client.post("/predict", json=payload)
        started = time.perf_counter()
        deadline = started + max_seconds

        async def client_loop() -> None:
            nonlocal next_request
            while next_request < max_requests and time.perf_counter() < deadline:
                payload = payloads[next_request]
                next_request += 1
                sent = time.perf_counter()
                try:
                    response = await client.post("/predict", json=payload)
                    outcome = (
                        "ok" if response.status_code == 200 else f"http {response.status_code}"
                    )
                except httpx.HTTPError as err:
                    outcome = type(err).__name__
                if outcome == "ok":
                    latencies.append(time.perf_counter() - sent)
                else:
                    errors[outcome] = errors.get(outcome, 0) + 1

        await asyncio.gather(*(client_loop() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    done = len(latencies) + sum(errors.values())
    return LevelResult(
        concurrency=concurrency,
        requests=done,
        texts_per_request=texts_per_request,
        seconds=round(elapsed, 2),
        requests_per_s=round(done / elapsed, 2),
        p50_ms=round(percentile(latencies, 0.50) * 1000, 1),
        p99_ms=round(percentile(latencies, 0.99) * 1000, 1),
        errors=sum(errors.values()),
        error_kinds=errors,
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    model: str, *, port: int, gpu_id: str, log: Path, workers: int = 1
) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "scripts.serve",
        model,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--gpu-id",
        gpu_id,
        "--workers",
        str(workers),
    ]
    with log.open("w") as log_file:
        return subprocess.Popen(
            command, cwd=PROJECT_ROOT, stdout=log_file, stderr=subprocess.STDOUT
        )


def wait_until_up(
    url: str, *, server: subprocess.Popen, log: Path, timeout: float = START_TIMEOUT_S
) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
            last = lines[-1] if lines else "no output"
            raise UserError(
                f"the server exited with status {server.returncode} before it answered: {last}"
            )
        try:
            if httpx.get(f"{url}/health", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise UserError(f"the server at {url} did not answer /health within {timeout:.0f} s; see {log}")


def stop_server(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def loadtest(
    *,
    model: Optional[str],
    url: Optional[str],
    texts: Sequence[str],
    levels: Sequence[int],
    max_requests: int,
    max_seconds: float,
    texts_per_request: int,
    gpu_id: str = "-1",
    workers: int = 1,
) -> list[LevelResult]:
    """Run every concurrency level against url, or against a server started here for model."""

    def run_levels(target: str) -> list[LevelResult]:
        return [
            asyncio.run(
                run_level(
                    url=target,
                    texts=texts,
                    concurrency=concurrency,
                    max_requests=max_requests,
                    max_seconds=max_seconds,
                    texts_per_request=texts_per_request,
                )
            )
            for concurrency in levels
        ]

    if url is not None and model is None:
        return run_levels(check_loopback(url))
    if model is None or url is not None:
        raise UserError(
            "pass either MODEL (a server is started on a free loopback port) or --url of a "
            "running server"
        )
    port = free_port()
    local = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "server.log"
        server = start_server(model, port=port, gpu_id=gpu_id, log=log, workers=workers)
        try:
            wait_until_up(local, server=server, log=log)
            return run_levels(local)
        finally:
            stop_server(server)


def parse_levels(value: str) -> list[int]:
    try:
        levels = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        levels = []
    if not levels or min(levels) < 1:
        raise UserError(
            f"--concurrency {value}: pass positive integers separated by commas, e.g. 1,16"
        )
    return levels
