"""Web server benchmark: ``digest serve`` (waitress, profiles cached) against today's server
before this change (wsgiref, a thread per connection, every profile re-read per request),
each in a child process of its own, on loopback.

    python bench/web.py [--profiles 10,10000] [--seconds 5] [--slow 1000] [--json PATH]

Figures, for each server:

- requests/s for a feed (``/feeds/<token>/feed.atom`` of a profile sent 10 papers) with 10
  and with 10,000 profiles in the folder: one client, sequential requests, a new connection
  each (wsgiref speaks HTTP/1.0), for `--seconds` (at least one request: the baseline at
  10,000 profiles takes about a minute per request), after one request that is not counted;
- the time to answer that request while `--slow` clients hold connections open, each having
  sent part of its headers and nothing more (median of 5, 10 s timeout each).
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import resource
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

SECRET = "bench-secret-0123456789abcdef"
NOW = dt.datetime(2026, 6, 8, 12, 0, tzinfo=dt.UTC)
PROFILE = """\
version: 1
email: {name}@example.org
interests:
  - name: masked image modeling
    text: masked autoencoders, MIM
  - name: dataset distillation
    text: condensing training sets
liked:
  - 2506.00009
"""


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096 <= hard or (hard == resource.RLIM_INFINITY and soft < 4096):
        resource.setrlimit(resource.RLIMIT_NOFILE, (4096, hard))


def make_site(folder: Path, profiles: int) -> None:
    """`profiles` profile files, and a store where the first was sent 10 papers."""
    from digest.store import Store

    (folder / "profiles").mkdir(parents=True)
    for i in range(profiles):
        name = f"p{i:05d}"
        (folder / "profiles" / f"{name}.yaml").write_text(PROFILE.format(name=name))
    with Store.open(f"sqlite:///{folder}/digest.sqlite") as store:
        with store.transaction() as tx:
            tx.insert_papers([{
                "key": f"2506.{i:05d}", "arxiv_id": f"2506.{i:05d}", "version": 1,
                "title": f"Paper {i} on masked autoencoders", "abstract": "We mask. " * 60,
                "title_raw": f"Paper {i}", "abstract_raw": "We mask.", "norm_title": f"paper {i}",
                "authors": json.dumps(["Ada Lovelace"]), "categories": json.dumps(["cs.CV"]),
                "announced": "2026-06-05", "first_seen": NOW, "updated_at": NOW,
                "url": f"https://arxiv.org/abs/2506.{i:05d}v1", "content_hash": "0" * 40,
            } for i in range(1, 11)])
        why = {"interest": "masked image modeling", "similarity": 0.5, "terms": ["mask"]}
        delivery = store.record_delivery(
            profile="p00000", key="2026-06-08", covered_to=dt.date(2026, 6, 8),
            status="pending", message_id="<x@example.org>", message=b"x", markdown="# x",
            items=[{"pid": pid, "score": 0.9, "why": why} for pid in range(1, 11)], now=NOW)
        store.complete_delivery(delivery.id, files=(), now=NOW)


# -- the server child ----------------------------------------------------------------------------


def _serve(kind: str, folder: Path) -> None:
    """Child: serve `folder` with `kind` until stdin closes; print the port first."""
    import threading

    from digest.app import DigestApp
    from digest.config import Config, ServerConfig
    from digest.web import make_server

    os.environ["DIGEST_BENCH_SECRET"] = SECRET
    _raise_fd_limit()
    config = Config(out_dir=str(folder / "out"), server=ServerConfig(
        public_url="https://digest.example.org", secret_env="DIGEST_BENCH_SECRET"))
    app = DigestApp(config, f"sqlite:///{folder}/digest.sqlite", str(folder / "profiles"),
                    clock=lambda: NOW)
    if kind == "ours":
        server: Any = make_server(app, "127.0.0.1", 0)
        port = server.server_address[1]
    else:
        server = _wsgiref_server(app)
        port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    print(json.dumps({"port": port}), flush=True)
    sys.stdin.read()
    os._exit(0)  # slow clients may still hold threads: no graceful stop needed here


def _wsgiref_server(app: Any) -> Any:
    """The server as it was before waitress: wsgiref with a thread per connection (30 s per
    read), and the profiles folder read whole on every request."""
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

    from digest.profiles import load_profiles
    from digest.web import make_app
    from digest.web.profilecache import Entry

    class Reread:
        def __init__(self, folder: str) -> None:
            self.folder = folder

        def get(self, name: str) -> Entry | None:
            found = load_profiles(self.folder)
            path = found.paths.get(name) or next(
                (Path(e.path) for e in found.errors if Path(e.path).stem == name), None)
            return None if path is None else Entry(path, found.get(name), None)

    class Handler(WSGIRequestHandler):
        timeout = 30

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # a slow client's read timing out: socketserver would print a traceback

    web = make_app(app)
    web.profiles = Reread(app.profiles_dir)  # type: ignore[assignment]
    server = Server(("127.0.0.1", 0), Handler)
    server.set_app(web)
    return server


# -- the client ----------------------------------------------------------------------------------


def _get(port: int, path: str, timeout: float) -> float:
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status}")
    finally:
        conn.close()
    return time.perf_counter() - started


def throughput(port: int, path: str, seconds: float) -> dict[str, Any]:
    done, started = 0, time.perf_counter()
    while done == 0 or time.perf_counter() - started < seconds:
        _get(port, path, timeout=600)
        done += 1
    elapsed = time.perf_counter() - started
    return {"requests": done, "seconds": elapsed, "per_s": done / elapsed}


def under_slow_clients(port: int, path: str, slow: int) -> dict[str, Any]:
    """Open `slow` connections at once (non-blocking, so a full listen queue cannot stall this
    for minutes), give them 5 s to connect, send each half a request head, then time a normal
    request five times."""
    held: list[socket.socket] = []
    try:
        for _ in range(slow):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
            held.append(sock)
        # poll, not select: descriptors past 1,024 are out of select's range.
        poller = select.poll()
        pending = {sock.fileno(): sock for sock in held}
        for fd in pending:
            poller.register(fd, select.POLLOUT)
        deadline = time.monotonic() + 5
        connected = 0
        while pending and time.monotonic() < deadline:
            for fd, _ in poller.poll(200):
                sock = pending.pop(fd)
                poller.unregister(fd)
                if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                    try:
                        sock.send(b"GET / HTTP/1.1\r\nHost: x\r\n")  # never the blank line
                        connected += 1
                    except OSError:
                        pass
        time.sleep(0.5)
        times: list[float | None] = []
        for _ in range(5):
            try:
                times.append(_get(port, path, timeout=10))
            except (OSError, RuntimeError, http.client.HTTPException):
                times.append(None)
    finally:
        for sock in held:
            sock.close()
    answered = [t for t in times if t is not None]
    return {"slow_clients": slow, "connected": connected, "answered": len(answered),
            "of": len(times), "median_s": statistics.median(answered) if answered else None}


def measure(kind: str, profiles: int, seconds: float, slow: int) -> dict[str, Any]:
    from digest.tokens import make_token

    with tempfile.TemporaryDirectory(prefix="bench-web-") as tmp:
        folder = Path(tmp)
        make_site(folder, profiles)
        # The server trusts a cached profile only once its file is 2 s old (mtimes are coarse):
        # measure the steady state, not the first seconds after the folder was written.
        time.sleep(2.1)
        child = subprocess.Popen([sys.executable, __file__, "--serve", kind, "--dir", tmp],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout is not None and child.stdin is not None
            port = json.loads(child.stdout.readline())["port"]
            path = f"/feeds/{make_token(SECRET, 'p00000', 'feed')}/feed.atom"
            result: dict[str, Any] = {"server": kind, "profiles": profiles,
                                      "load_before": os.getloadavg()[0]}
            result["first_s"] = _get(port, path, timeout=600)  # warms caches; not counted
            result["throughput"] = throughput(port, path, seconds)
            if slow:
                result["slow"] = under_slow_clients(port, path, slow)
            result["load_after"] = os.getloadavg()[0]
            return result
        finally:
            if child.stdin is not None:
                child.stdin.close()
            child.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--profiles", default="10,10000")
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--slow", type=int, default=1000)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--serve", choices=["ours", "wsgiref"], help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve(args.serve, args.dir)
        return
    _raise_fd_limit()
    sizes = [int(n) for n in args.profiles.split(",")]
    points = []
    for profiles in sizes:
        for kind in ("ours", "wsgiref"):
            # Slow clients once per server, at the smallest folder (they test serving).
            slow = args.slow if profiles == sizes[0] else 0
            print(f"web: {kind}, {profiles:,} profiles", file=sys.stderr, flush=True)
            points.append(measure(kind, profiles, args.seconds, slow))
    report = {"points": points, "seconds": args.seconds, "slow": args.slow}
    text = json.dumps(report, indent=2)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
