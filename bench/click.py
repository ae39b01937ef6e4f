"""GET /c/<code> under gunicorn against a bare Django 302 view in the same server, and CLICK_BUFFER=database.

    python bench/click.py            (BENCH_SECONDS=10, BENCH_DATABASE_URL, BENCH_REDIS_URL to change defaults)

One gunicorn configuration (config/gunicorn.py, as production runs it: sync workers, 2 per CPU + 1, access
log on; its environment variables change it) with production settings serves three
runs in turn: a Django view that only returns a 302 (through the whole middleware stack, as any page), the
click redirect with the Redis buffer, and the click redirect writing each click to PostgreSQL. wrk drives
each with 32 connections (a Python load generator if wrk is not installed). The three runs alternate for
BENCH_ROUNDS rounds (default 3) and the table shows each one's median, so a slow minute of a shared machine
does not land on one side of a ratio only; the ratio of every round is printed too. After each run the
buffer is drained and the stored clicks are compared with the 302s gunicorn logged. Targets (issue 4): the
click at >= 0.6x the bare view's throughput, p99 <= 25 ms, 0 SQL queries per cached click, stored == served.
"""

import contextlib
import http.client
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

# Replace this script's folder on the path by the project's: bench/click.py would shadow the click package.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.django_bench.common import (  # noqa: E402  (after the path fix above)
    ROOT,
    bench_link,
    counted_statements,
    forget_buffer,
    machine,
    set_up_django,
    truncate_events,
    wsgi_call,
)

SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
CONNECTIONS = 32
WARM_UP_REQUESTS = 200
GUNICORN_CONFIG = ROOT / "config" / "gunicorn.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_configuration() -> str:
    """Workers, worker class and threads as config/gunicorn.py reads them from this environment."""
    values: dict = {}
    exec(GUNICORN_CONFIG.read_text(), values)  # noqa: S102  (our own config file, as gunicorn itself reads it)
    return f"{values['workers']} workers, {values['worker_class']}, {values['threads']} thread(s) each"


@contextlib.contextmanager
def gunicorn(env: dict[str, str], access_log: Path):
    """gunicorn with the production configuration (config/gunicorn.py) on a free loopback port."""
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONFIG), "config.wsgi", "--log-level", "warning"]
    env = {**env, "GUNICORN_BIND": f"127.0.0.1:{port}", "GUNICORN_ACCESS_LOG": str(access_log)}
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("gunicorn did not start") from None
                time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=20)


def get(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"User-Agent": "Mozilla/5.0 (bench)"})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def milliseconds(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def load_with_wrk(port: int, path: str) -> dict:
    url = f"http://127.0.0.1:{port}{path}"
    output = subprocess.run(
        ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{SECONDS:.0f}s", "--latency", "-H", "User-Agent: Mozilla/5.0", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", output, re.MULTILINE))
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50": milliseconds(percentiles["50"]),
        "p99": milliseconds(percentiles["99"]),
        "errors": "Socket errors" in output or "Non-2xx or 3xx" in output,
    }


def load_with_python(port: int, path: str) -> dict:
    """Fallback without wrk: 32 threads with keep-alive connections. The GIL makes it the bottleneck sooner."""
    latencies: list[float] = []
    errors = []
    deadline = time.monotonic() + SECONDS

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        mine = []
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                conn.request("GET", path, headers={"User-Agent": "Mozilla/5.0 (bench)"})
                response = conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException) as error:
                errors.append(error)
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                continue
            mine.append(time.perf_counter() - started)
        latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(CONNECTIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    latencies.sort()
    return {
        "rps": len(latencies) / SECONDS,
        "p50": latencies[len(latencies) // 2] * 1000,
        "p99": latencies[int(len(latencies) * 0.99)] * 1000,
        "errors": bool(errors),
    }


def served_302s(access_log: Path) -> int:
    return sum(1 for line in access_log.read_text().splitlines() if '" 302 ' in line)


def drain_everything() -> None:
    from tracking.clicks import drain_buffer

    while drain_buffer():
        pass


def stored_clicks() -> int:
    from django_scopes import scopes_disabled

    from tracking.models import Click

    with scopes_disabled():
        return Click.objects.count()


def queries_per_click(code: str, buffer: str) -> float:
    """SQL statements per click with a warm link cache, counted in this process through config.wsgi; BEGIN and
    COMMIT are not counted, as in bench/postback.py."""
    from django.conf import settings
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    settings.CLICK_BUFFER = buffer

    def click() -> None:
        assert wsgi_call(f"/c/{code}").startswith("302")

    click()  # warm
    with CaptureQueriesContext(connection) as queries:
        for _ in range(100):
            click()
    return len(counted_statements(queries.captured_queries)) / 100


def median_result(measured: list[dict]) -> dict:
    """Median rate and latencies of a run's rounds; 302s served and clicks stored are summed."""
    stored = [run["stored"] for run in measured]
    return {
        "rps": statistics.median(run["rps"] for run in measured),
        "p50": statistics.median(run["p50"] for run in measured),
        "p99": statistics.median(run["p99"] for run in measured),
        "served": sum(run["served"] for run in measured),
        "stored": None if stored[0] is None else sum(stored),
        "errors": any(run["errors"] for run in measured),
    }


def main() -> None:
    env = set_up_django()
    code = bench_link().code
    load = load_with_wrk if shutil.which("wrk") else load_with_python
    print(f"machine: {machine()}")
    print(f"gunicorn (config/gunicorn.py): {server_configuration()}; load: {load.__name__[10:]}, {CONNECTIONS} conns")
    runs = [
        ("bare Django 302 view", f"/bare/{code}", "redis"),
        ("/c/ Redis buffer", f"/c/{code}", "redis"),
        ("/c/ CLICK_BUFFER=database", f"/c/{code}", "database"),
    ]
    rounds: dict[str, list[dict]] = {name: [] for name, _path, _buffer in runs}
    for _round in range(ROUNDS):
        for name, path, buffer in runs:
            truncate_events()
            forget_buffer()
            with tempfile.TemporaryDirectory() as folder:
                access_log = Path(folder) / "access.log"
                with gunicorn({**env, "CLICK_BUFFER": buffer}, access_log) as port:
                    statuses = {get(port, path) for _ in range(WARM_UP_REQUESTS)}
                    assert statuses == {302}, statuses
                    result = load(port, path)
                served = served_302s(access_log)
            drain_everything()
            result.update(served=served, stored=stored_clicks() if path.startswith("/c/") else None)
            rounds[name].append(result)

    results = {name: median_result(measured) for name, measured in rounds.items()}
    bare = results["bare Django 302 view"]["rps"]
    print(f"medians of {ROUNDS} rounds; 302s and stored clicks are sums")
    print(f"{'':28} {'req/s':>8} {'ratio':>6} {'p50 ms':>7} {'p99 ms':>7} {'302s':>8} {'stored':>8}")
    for name, result in results.items():
        stored = "-" if result["stored"] is None else result["stored"]
        print(
            f"{name:28} {result['rps']:8.0f} {result['rps'] / bare:5.2f}x {result['p50']:7.2f} {result['p99']:7.2f}"
            f" {result['served']:8} {stored!s:>8}" + ("  (errors)" if result["errors"] else "")
        )
    for name, measured in rounds.items():
        ratios = [run["rps"] / base["rps"] for run, base in zip(measured, rounds["bare Django 302 view"], strict=True)]
        p99s = [run["p99"] for run in measured]
        print(
            f"{name:28} ratio by round: {' '.join(f'{ratio:.2f}x' for ratio in ratios)};"
            f" p99 by round: {' '.join(f'{p99:.1f}' for p99 in p99s)} ms"
        )
    for name in ("/c/ Redis buffer", "/c/ CLICK_BUFFER=database"):
        lost = results[name]["served"] - results[name]["stored"]
        print(f"{name}: clicks lost {lost}")
    buffered, direct = queries_per_click(code, "redis"), queries_per_click(code, "database")
    print(f"SQL statements per cached click (BEGIN/COMMIT not counted): Redis buffer {buffered:.2f}", end="")
    print(f", CLICK_BUFFER=database {direct:.2f}")
    truncate_events()
    forget_buffer()


if __name__ == "__main__":
    main()
