"""SMTP delivery benchmark: 1,000 digests of ~40 KB to a loopback aiosmtpd server.

    python bench/smtp.py [--messages 1000] [--rounds 3] [--json bench/results/smtp.json]

The server (tests/smtp_server.py) runs in a child process, so that it does not share the GIL
with the client. Two runs to it, measured in the same run: `SmtpTransport` (one connection for
the batch), and the naive baseline, a new connection (connect, EHLO, send, QUIT) per message,
alternating over a few rounds; the median round of each is reported. Rendering the messages is
timed apart and not counted in either. Machines here are shared and noisy: read the ratio, and
the CPU columns (a server CPU close to the seconds means the test server is the limit).
Target (issue): 200 messages/s or more with one connection.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import resource
import smtplib
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from digest.mailer import SmtpSettings, SmtpTransport, build_message  # noqa: E402

SENDER = "Paper Digest <digest@example.org>"
WORDS = [
    "we", "propose", "a", "diffusion", "transformer", "for", "monocular", "depth", "estimation",
    "that", "scales", "with", "data", "and", "compute", "while", "remaining", "efficient", "at",
    "inference", "time", "on", "commodity", "hardware",
]


def _serve(ids: bool = False) -> None:
    """Child: run the server; on each line of stdin, print and reset what it received (with
    `ids`, the Message-ID of each message too: bench/queue_workers.py counts duplicates)."""
    from smtp_server import RecordingServer  # type: ignore[import-not-found,unused-ignore]

    def cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    with RecordingServer() as server:
        print(json.dumps({"port": server.port}), flush=True)
        since = cpu()
        for _ in sys.stdin:
            with server.lock:
                stats: dict[str, Any] = {
                    "messages": len(server.messages),
                    "bytes": sum(len(m.content) for m in server.messages),
                    "connections": server.connections,
                    "cpu_s": cpu() - since,
                }
                if ids:
                    stats["ids"] = [_message_id(m.content) for m in server.messages]
                since = cpu()
                server.messages.clear()
                server.connections = 0
            print(json.dumps(stats), flush=True)


def _message_id(content: bytes) -> str:
    found = re.search(rb"^Message-ID:\s*(\S+)", content, re.MULTILINE | re.IGNORECASE)
    return found.group(1).decode() if found else ""


def _digest(i: int) -> tuple[str, bytes]:
    """A realistic digest: 30 papers with title, authors and abstract, text and HTML."""
    text_items, html_items = [], []
    for n in range(30):
        title = " ".join(WORDS[(n + k) % len(WORDS)] for k in range(9)).capitalize()
        abstract = " ".join(WORDS[(i + n + k) % len(WORDS)] for k in range(50))
        url = f"https://arxiv.org/abs/2605.{i * 30 + n:05d}"
        text_items.append(f"{n + 1}. {title}\n   A. Author, B. Author\n   {url}\n   {abstract}\n")
        html_items.append(
            f'<tr><td style="padding:8px 0;font-family:sans-serif"><a href="{url}" '
            f'style="color:#1a0dab;font-weight:bold">{title}</a><br><span style="color:#555">'
            f"A. Author, B. Author — score 0.{90 - n}</span><p>{abstract}</p></td></tr>"
        )
    to = f"reader{i}@example.org"
    message = build_message(
        sender=SENDER,
        to=to,
        subject=f"30 new papers for profile {i} — 4 May 2026",
        text="\n".join(text_items),
        html="<html><body><table>" + "".join(html_items) + "</table></body></html>",
        message_id=f"<2026-05-04.{i}@digest.example.org>",
        date=dt.datetime(2026, 5, 4, 7, 0, tzinfo=dt.UTC),
        list_id=f"profile{i}.digest.example.org",
        unsubscribe_url=f"https://digest.example.org/unsubscribe/{i:08d}" + "x" * 200,
        unsubscribe_mailto="unsubscribe@example.org",
    )
    return to, message


def _one_connection(port: int, batch: list[tuple[str, bytes]]) -> None:
    settings = SmtpSettings("127.0.0.1", port, security="none", timeout=30)
    with SmtpTransport(settings) as transport:
        for i, (to, message) in enumerate(batch):
            transport.send(profile=str(i), sender=SENDER, to=to, message=message,
                           message_id=f"<{i}>")


def _connection_per_message(port: int, batch: list[tuple[str, bytes]]) -> None:
    for to, message in batch:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as conn:
            conn.sendmail("digest@example.org", [to], message)


MODES = {"one_connection": _one_connection, "connection_per_message": _connection_per_message}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of both modes, alternating; the median round is reported")
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "smtp.json"))
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ids", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return _serve(args.ids)

    start = time.perf_counter()
    batch = [_digest(i) for i in range(args.messages)]
    render_s = time.perf_counter() - start
    mean_kb = sum(len(m) for _, m in batch) / len(batch) / 1024

    child = subprocess.Popen(
        [sys.executable, __file__, "--serve"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )
    assert child.stdin is not None and child.stdout is not None
    runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    try:
        port = json.loads(child.stdout.readline())["port"]

        def received() -> dict[str, float]:
            assert child.stdin is not None and child.stdout is not None
            child.stdin.write("stats\n")
            child.stdin.flush()
            stats: dict[str, float] = json.loads(child.stdout.readline())
            return stats

        received()  # the server's start-up CPU is not the runs'
        for round_ in range(args.rounds):
            # Alternate which mode goes first, so that drift in the machine's load hits both.
            for mode in sorted(MODES, reverse=bool(round_ % 2)):
                start, cpu = time.perf_counter(), time.process_time()
                MODES[mode](port, batch)
                seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
                stats = received()
                assert stats["messages"] == len(batch), (mode, stats)
                runs[mode].append({
                    "seconds": seconds, "per_s": len(batch) / seconds, "client_cpu_s": cpu,
                    "server_cpu_s": stats["cpu_s"], "connections": stats["connections"],
                })
    finally:
        child.stdin.close()
        child.wait(timeout=30)

    median = {mode: sorted(rows, key=lambda r: r["seconds"])[len(rows) // 2]
              for mode, rows in runs.items()}
    ratio = median["connection_per_message"]["seconds"] / median["one_connection"]["seconds"]
    rate = median["one_connection"]["per_s"]
    results = {
        "messages": len(batch), "mean_kb": round(mean_kb, 1), "render_s": render_s,
        "median": median, "ratio": ratio, "target_per_s": 200, "rounds": runs,
        "load_average": os.getloadavg()[0],
    }
    print(f"{len(batch)} messages of {mean_kb:.1f} KB; rendering them took {render_s:.2f} s "
          f"({len(batch) / render_s:.0f}/s), not counted below. Median of {args.rounds} rounds:")
    print(f"{'':24} {'seconds':>8} {'msg/s':>8} {'conns':>6} {'client cpu':>11} {'server cpu':>11}")
    for mode, row in median.items():
        print(f"{mode.replace('_', ' '):24} {row['seconds']:8.2f} {row['per_s']:8.0f} "
              f"{row['connections']:6.0f} {row['client_cpu_s']:10.2f}s "
              f"{row['server_cpu_s']:10.2f}s")
    print(f"one connection: {ratio:.2f}x the naive baseline; {rate:.0f} msg/s against a target of "
          f"200 ({'met' if rate >= 200 else 'NOT met'}); load average {os.getloadavg()[0]:.1f}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
