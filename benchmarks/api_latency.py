"""API latency and throughput under concurrent load, on loopback.

Starts ``patentmatch serve`` as a subprocess (unless ``--url`` names a running
API), waits for ``/v1/health``, then sends ``POST /v1/search`` requests with a
fixed number of concurrent clients. Query titles come from the bundled sample,
and each request sends a title not sent before (while they last), so the
encoder's query cache does not hide its cost. Every mode given is measured in
turn with the same bounds (requests and seconds).

    python benchmarks/api_latency.py --concurrency 1 4 16 --requests 300 --max-seconds 60 \\
        --out benchmarks/results/api_latency.json

The server uses the settings from the environment (ES_URL,
PATENTMATCH_INDEX_ALIAS, PATENTMATCH_CACHE_DIR, PATENTMATCH_MODEL), so point
them at a prepared index first (``patentmatch demo --prepare-only``).
Never run by the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import logging
import os
import platform
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "ingest" / "data" / "kipris-sample.jsonl.gz"
logger = logging.getLogger("benchmarks.api_latency")


def sample_titles(count: int, seed: int) -> list[str]:
    with gzip.open(SAMPLE, "rt", encoding="utf-8") as handle:
        titles = [json.loads(line)["title"] for line in handle]
    random.Random(seed).shuffle(titles)
    return [t.split("(")[0].strip() or t for t in titles[:count]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def wait_healthy(url: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    last = "no reply"
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(f"{url}/v1/health") as response:
                    body = await response.json()
                    if response.status == 200:
                        return body
                    last = json.dumps(body, ensure_ascii=False)[:500]
            except aiohttp.ClientError as exc:
                last = str(exc)
            await asyncio.sleep(1.0)
    raise RuntimeError(f"API at {url} not healthy after {timeout:.0f} s: {last}")


async def load(url: str, titles: list[str], mode: str, concurrency: int, requests: int,
               max_seconds: float, k: int, offset: int = 0) -> dict:
    """Send up to ``requests`` searches from ``concurrency`` workers, stopping at ``max_seconds``.

    Titles are taken from ``offset`` on, so runs that use different offsets
    send different titles and the API's query-vector cache does not hide the
    encoder's cost.
    """
    latencies: list[float] = []
    errors: dict[str, int] = {}
    counter = iter(range(offset, offset + requests))
    started = time.perf_counter()
    deadline = started + max_seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        for i in counter:
            if time.perf_counter() > deadline:
                return
            body = {"title": titles[i % len(titles)], "k": k, "mode": mode}
            sent = time.perf_counter()
            try:
                async with session.post(f"{url}/v1/search", json=body) as response:
                    await response.read()
                    if response.status != 200:
                        errors[str(response.status)] = errors.get(str(response.status), 0) + 1
                        continue
            except aiohttp.ClientError as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                continue
            latencies.append((time.perf_counter() - sent) * 1000)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    values = np.asarray(latencies) if latencies else np.asarray([np.nan])
    return {
        "mode": mode, "concurrency": concurrency, "requests": len(latencies), "errors": errors,
        "seconds": elapsed, "throughput_rps": len(latencies) / elapsed,
        "p50_ms": float(np.percentile(values, 50)), "p95_ms": float(np.percentile(values, 95)),
        "p99_ms": float(np.percentile(values, 99)), "max_ms": float(np.max(values)),
    }


def markdown(rows: list[dict]) -> str:
    lines = ["| mode | concurrency | requests | errors | req/s | p50 ms | p95 ms | p99 ms |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['mode']} | {r['concurrency']} | {r['requests']} | {sum(r['errors'].values())} | "
                     f"{r['throughput_rps']:.1f} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['p99_ms']:.1f} |")
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> dict:
    server = None
    url = args.url
    if url is None:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "patentmatch.cli", "-q", "serve", "--host", "127.0.0.1",
                   "--port", str(port)]
        logger.info("Starting %s", " ".join(command))
        server = subprocess.Popen(command, cwd=ROOT, env=os.environ.copy())
    try:
        health = await wait_healthy(url, args.start_timeout)
        titles = sample_titles(args.titles, args.seed)
        rows = []
        offset = 0
        for mode in args.modes:
            # One warm-up pass per mode loads lazy state (BM25 analyser, Faiss pages).
            await load(url, titles, mode, 1, 5, 60, args.k, offset)
            offset += 5
            for concurrency in args.concurrency:
                row = await load(url, titles, mode, concurrency, args.requests, args.max_seconds, args.k,
                                 offset)
                offset += args.requests
                if offset > len(titles):
                    logger.warning("Only %d distinct titles: later runs repeat titles, and cached "
                                   "query vectors make them look faster", len(titles))
                logger.info("%s c=%d: %.1f req/s, p50 %.1f ms, p99 %.1f ms", mode, concurrency,
                            row["throughput_rps"], row["p50_ms"], row["p99_ms"])
                rows.append(row)
        return {"health": health, "rows": rows}
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="running API to load (default: start `patentmatch serve`)")
    parser.add_argument("--modes", nargs="+", default=["two_stage", "hybrid", "bm25"],
                        choices=["two_stage", "hybrid", "bm25", "dense"], help="modes to measure")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16],
                        help="concurrent clients (default: 1 4 16)")
    parser.add_argument("--requests", type=int, default=300, help="requests per run (default 300)")
    parser.add_argument("--max-seconds", type=float, default=60.0,
                        help="time bound per run, in seconds (default 60)")
    parser.add_argument("--k", type=int, default=10, help="results per search (default 10)")
    parser.add_argument("--titles", type=int, default=5000,
                        help="distinct query titles (default 5000); every request of a "
                        "benchmark run sends a title not sent before while they last")
    parser.add_argument("--start-timeout", type=float, default=300.0,
                        help="seconds to wait for the API to become healthy (default 300)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="JSON output file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    result = asyncio.run(run(args))
    record = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "load_average": os.getloadavg(),
                          "processor": platform.processor() or platform.machine()},
              "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              **result}
    print(markdown(result["rows"]))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
