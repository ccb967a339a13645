"""Load-test the HTTP server on this machine: requests/s, p50/p99 latency and errors per level.

    python -m scripts.loadtest training/model-best          # serves it on a free loopback port
    python -m scripts.loadtest --url http://127.0.0.1:8000  # a server running on this machine
    python -m scripts.loadtest training/model-best --workers 2 --concurrency 16

Each level sends POST /predict with the sample corpus's texts (or --texts), `--texts-per-request`
per request, from `concurrency` clients at once, until `--requests` requests or `--seconds` have
passed, after a few warm-up requests. Only loopback addresses are accepted. One JSON line per level.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from scripts.bench.loadtest import loadtest, parse_levels
from scripts.bench.throughput import load_texts
from scripts.common.errors import info, reported_as_one_line
from scripts.common.options import GPU_ID, gpu_id_option

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    model: Optional[str] = typer.Argument(
        None, help="Pipeline to serve for the test (directory or package); or pass --url"
    ),
    url: Optional[str] = typer.Option(
        None, "--url", help="A server already running on this machine, e.g. http://127.0.0.1:8000"
    ),
    concurrency: str = typer.Option(
        "1,16", "--concurrency", help="Concurrent clients per level, comma-separated"
    ),
    max_requests: int = typer.Option(200, "--requests", min=1, help="Requests per level (at most)"),
    max_seconds: float = typer.Option(
        60.0, "--seconds", min=1.0, help="Seconds per level (at most)"
    ),
    texts_path: Optional[Path] = typer.Option(
        None, "--texts", help=".jsonl/.json/.csv/.txt texts; default: the sample corpus"
    ),
    texts_per_request: int = typer.Option(
        1, "--texts-per-request", min=1, help="Texts in each request"
    ),
    gpu_id: str = gpu_id_option(),
    workers: int = typer.Option(
        1, "--workers", min=1, help="Worker processes of the server started for MODEL"
    ),
) -> None:
    """Print one JSON line per concurrency level: requests/s, p50/p99 latency (ms) and errors."""
    with reported_as_one_line(options=GPU_ID):
        levels = parse_levels(concurrency)
        texts = load_texts(texts_path)
        clients = ", ".join(map(str, levels))
        info(
            f"Load test: {clients} concurrent clients, up to {max_requests} requests or "
            f"{max_seconds:.0f} s each"
        )
        results = loadtest(
            model=model,
            url=url,
            texts=texts,
            levels=levels,
            max_requests=max_requests,
            max_seconds=max_seconds,
            texts_per_request=texts_per_request,
            gpu_id=gpu_id,
            workers=workers,
        )
    for result in results:
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    app()
