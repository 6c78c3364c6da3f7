#!/usr/bin/env python3
"""Bounded loopback load test of `optiq serve`: starts the server on a free port, sends a mix of
well-formed and malformed requests from many concurrent clients, and checks that

- every well-formed request gets a valid answer: 200 with a parseable body, or a complete
  stream (OpenAI ending in `data: [DONE]`, Anthropic in `message_stop`), or for a stream the
  client drops after its first chunk, a 200 and that chunk;
- every malformed one (bad JSON, a field of the wrong type, an unknown model, Anthropic without
  max_tokens, a body over the 8 MiB limit) gets the expected 4xx in its API's error shape;
- no request gets a 5xx or loses its connection, and the server is alive (and /health answers)
  at the end;
- the server's resident memory (VmRSS, sampled) at the end is at most twice what it was after
  a warm-up round.

Prints requests/s, p50/p95 latency and peak RSS; exits 1 on any violation, 2 when the server
does not start, 3 past the hard time limit. The server is always killed.

    serve_load.py [--optiq build/optiq] [--model M.gguf] [--requests 1000] [--concurrency 64]
                  [--max-tokens 8] [--parallel 4] [--time-limit 300]
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# CTest passes OPTIQ_SHARED (the shared models folder's parent); run by hand, the usual place.
DEFAULT_MODEL = Path(os.environ.get("OPTIQ_SHARED", "/work/shared")) / "models" / "stories260K" / "stories260K.gguf"
# For a model without a chat template: the conversation's text, system message on its own line.
PLAIN_TEMPLATE = ("{% for message in messages %}{% if message['role'] == 'system' %}{{ message['content'] + '\\n' }}"
                  "{% else %}{{ message['content'] }}{% endif %}{% endfor %}")
BODY_LIMIT = 8 * 1024 * 1024  # bytes: optiq serve's request body limit
SOCKET_TIMEOUT = 120           # seconds a client waits on one socket operation
USER = [{"role": "user", "content": "Once upon a time"}]

# Request kinds, with their share of the mix. A kind is (path, body, expectation); bodies are
# built per request so that max_tokens and streaming vary.
WELL_FORMED = {"chat": 3, "chat_stream": 3, "completion": 2, "completion_stream": 1, "messages": 3,
               "messages_stream": 3, "count_tokens": 1, "chat_cancel": 1, "messages_cancel": 1}
MALFORMED = {"bad_json_openai": 1, "bad_json_anthropic": 1, "wrong_type": 1, "unknown_model": 1,
             "anthropic_no_max_tokens": 1, "oversized": 0.2}


def build(kind: str, max_tokens: int) -> tuple[str, bytes, int | None]:
    """(path, body, expected status: None for a 200 that must also validate)."""
    def js(o: dict) -> bytes:
        return json.dumps(o).encode()
    chat = {"messages": USER, "max_tokens": max_tokens}
    msgs = {"model": "load", "messages": USER, "max_tokens": max_tokens}
    table = {
        "chat": ("/v1/chat/completions", js(chat), None),
        "chat_stream": ("/v1/chat/completions", js({**chat, "stream": True, "stream_options": {"include_usage": True}}), None),
        "chat_cancel": ("/v1/chat/completions", js({**chat, "stream": True}), None),
        "completion": ("/v1/completions", js({"prompt": "Once upon a time", "max_tokens": max_tokens}), None),
        "completion_stream": ("/v1/completions", js({"prompt": "Once", "max_tokens": max_tokens, "stream": True}), None),
        "messages": ("/v1/messages", js(msgs), None),
        "messages_stream": ("/v1/messages", js({**msgs, "stream": True}), None),
        "messages_cancel": ("/v1/messages", js({**msgs, "stream": True}), None),
        "count_tokens": ("/v1/messages/count_tokens", js({"model": "load", "messages": USER}), None),
        "bad_json_openai": ("/v1/chat/completions", b'{"messages": [', 400),
        "bad_json_anthropic": ("/v1/messages", b'{"model": "load", ', 400),
        "wrong_type": ("/v1/chat/completions", js({**chat, "temperature": "hot"}), 400),
        "unknown_model": ("/v1/messages", js({**msgs, "model": "no-such-model"}), 404),
        "anthropic_no_max_tokens": ("/v1/messages", js({"model": "load", "messages": USER}), 400),
        "oversized": ("/v1/completions", b'{"prompt": "' + b"a" * BODY_LIMIT + b'"}', 413),
    }
    return table[kind]


def check_error_shape(path: str, body: dict) -> bool:
    if path.startswith("/v1/messages"):
        return body.get("type") == "error" and isinstance(body.get("error", {}).get("type"), str) and \
            isinstance(body["error"].get("message"), str)
    err = body.get("error")
    return isinstance(err, dict) and isinstance(err.get("message"), str) and isinstance(err.get("type"), str)


def check_stream(path: str, text: str) -> str | None:
    """None if `text` is a complete stream of the path's API, else what is wrong."""
    events = [e for e in text.split("\n\n") if e.strip()]
    if not events:
        return "empty stream"
    if path.startswith("/v1/messages"):
        types = []
        for e in events:
            lines = dict(line.split(": ", 1) for line in e.split("\n"))
            data = json.loads(lines["data"])
            if data.get("type") != lines.get("event"):
                return f"event {lines.get('event')} carries {data.get('type')}"
            types.append(data["type"])
        if types[0] != "message_start" or types[-1] != "message_stop":
            return f"events {types[0]} ... {types[-1]}"
        return None
    if events[-1] != "data: [DONE]":
        return f"ends with {events[-1][:80]!r}"
    for e in events[:-1]:
        if not e.startswith("data: "):
            return f"not a data line: {e[:80]!r}"
        json.loads(e[6:])
    return None


def check_ok(kind: str, body: dict) -> bool:
    if kind == "chat":
        return body["object"] == "chat.completion" and isinstance(body["choices"][0]["message"]["content"], str)
    if kind == "completion":
        return body["object"] == "text_completion" and isinstance(body["choices"][0]["text"], str)
    if kind == "messages":
        return body["type"] == "message" and body["stop_reason"] in ("end_turn", "max_tokens", "stop_sequence")
    if kind == "count_tokens":
        return isinstance(body["input_tokens"], int) and body["input_tokens"] > 0
    raise AssertionError(kind)


class Server:
    def __init__(self, args: argparse.Namespace, work: Path):
        cmd = [args.optiq, "serve", args.model, "--port", "0", "--alias", "load", "-c", str(args.ctx),
               "--parallel", str(args.parallel), "-t", str(args.threads)]
        info = subprocess.run([args.optiq, "info", args.model, "--json", "--metadata"], capture_output=True, text=True)
        if "tokenizer.chat_template" not in info.stdout:
            template = work / "plain.jinja"
            template.write_text(PLAIN_TEMPLATE)
            cmd += ["--chat-template-file", str(template)]
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        self.log: deque[str] = deque(maxlen=50)  # the last lines, for a failure report
        self.port = None
        deadline = time.time() + 60
        while self.port is None and time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.log.append(line)
            if m := re.search(r"listening on http://127\.0\.0\.1:(\d+)", line):
                self.port = int(m.group(1))
        # One line per request: it must be read, or the server blocks on a full pipe.
        threading.Thread(target=lambda: [self.log.append(line) for line in self.proc.stderr], daemon=True).start()

    def rss_kib(self) -> int | None:
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            return None
        return None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def one_request(port: int, kind: str, max_tokens: int) -> tuple[str, float, str | None]:
    """(kind, seconds, violation or None)."""
    path, body, expect = build(kind, max_tokens)
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=SOCKET_TIMEOUT)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        if kind.endswith("_cancel"):
            # Drop the stream after its first chunk; the server must stop that generation.
            first = resp.read1(65536) if resp.status == 200 else resp.read()
            seconds = time.perf_counter() - start
            conn.sock.close()
            if resp.status != 200 or not first:
                return kind, seconds, f"{kind}: {resp.status} {first[:200]!r}"
            return kind, seconds, None
        data = resp.read()
        seconds = time.perf_counter() - start
        if expect is not None:
            try:
                shaped = check_error_shape(path, json.loads(data))
            except (ValueError, AttributeError):
                shaped = False
            if resp.status != expect or not shaped:
                return kind, seconds, f"{kind}: expected {expect} in the API's error shape, got {resp.status} {data[:200]!r}"
            return kind, seconds, None
        if resp.status != 200:
            return kind, seconds, f"{kind}: {resp.status} {data[:200]!r}"
        if kind.endswith("_stream"):
            problem = check_stream(path, data.decode())
            return kind, seconds, problem and f"{kind}: incomplete stream: {problem}"
        return kind, seconds, None if check_ok(kind, json.loads(data)) else f"{kind}: bad body {data[:200]!r}"
    except (OSError, http.client.HTTPException, ValueError, KeyError, IndexError) as e:
        return kind, time.perf_counter() - start, f"{kind}: {type(e).__name__}: {e}"
    finally:
        conn.close()


def run_round(port: int, kinds: list[str], concurrency: int, max_tokens: int) -> list[tuple[str, float, str | None]]:
    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(lambda k: one_request(port, k, max_tokens), kinds))


def percentile(xs: list[float], p: float) -> float:
    return statistics.quantiles(xs, n=100, method="inclusive")[p - 1] if len(xs) > 1 else xs[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--optiq", default=os.environ.get("OPTIQ", str(ROOT / "build" / "optiq")))
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--max-tokens", type=int, default=8)
    ap.add_argument("--parallel", type=int, default=4, help="server slots")
    ap.add_argument("--ctx", type=int, default=256, help="tokens per slot")
    ap.add_argument("--threads", type=int, default=1, help="server compute threads")
    ap.add_argument("--time-limit", type=float, default=300, help="seconds for the whole run")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="optiq-serve-load-"))
    server = Server(args, work)

    def overtime() -> None:
        print(f"serve_load: over the {args.time_limit:.0f} s limit; killing the server", file=sys.stderr, flush=True)
        server.kill()
        os._exit(3)
    watchdog = threading.Timer(args.time_limit, overtime)
    watchdog.daemon = True
    watchdog.start()
    try:
        if server.port is None:
            print("serve_load: the server did not start:\n" + "".join(server.log), file=sys.stderr)
            return 2
        print(f"serve_load: {' '.join(server.cmd)} (port {server.port})")
        rng = random.Random(args.seed)
        mix = {**WELL_FORMED, **MALFORMED}
        kinds = rng.choices(list(mix), weights=list(mix.values()), k=args.requests)
        # Every kind at least once, whatever the draw.
        kinds[:len(mix)] = list(mix)
        rng.shuffle(kinds)

        rss: list[int] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                if (kib := server.rss_kib()) is not None:
                    rss.append(kib)
                stop.wait(0.05)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()

        warm = run_round(server.port, list(mix) * 4, args.concurrency, args.max_tokens)
        rss_warm = server.rss_kib()
        t0 = time.perf_counter()
        results = run_round(server.port, kinds, args.concurrency, args.max_tokens)
        wall = time.perf_counter() - t0
        rss_end = server.rss_kib()
        stop.set()
        sampler.join()

        violations = [v for _, _, v in warm + results if v]
        alive = server.proc.poll() is None
        if not alive:
            violations.append(f"the server exited with {server.proc.returncode}")
        else:
            status = 0
            try:
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
                conn.request("GET", "/health")
                status = conn.getresponse().status
                conn.close()
            except OSError as e:
                violations.append(f"/health after the run: {e}")
            if status != 200:
                violations.append(f"/health after the run: {status}")
        if rss_warm and rss_end and rss_end > 2 * rss_warm:
            violations.append(f"RSS grew from {rss_warm} KiB after warm-up to {rss_end} KiB")

        lat = sorted(s for _, s, _ in results)
        counts = Counter(k for k, _, _ in results)
        print(f"serve_load: {len(results)} requests ({len(warm)} warm-up before), concurrency {args.concurrency}, "
              f"max_tokens {args.max_tokens}, {args.parallel} slots")
        print("serve_load: mix " + ", ".join(f"{k} {counts[k]}" for k in mix))
        print(f"serve_load: {len(results) / wall:.1f} requests/s over {wall:.1f} s; latency p50 {percentile(lat, 50) * 1e3:.0f} ms, "
              f"p95 {percentile(lat, 95) * 1e3:.0f} ms (cancelled streams: to the first chunk)")
        print(f"serve_load: RSS after warm-up {(rss_warm or 0) / 1024:.1f} MiB, at the end {(rss_end or 0) / 1024:.1f} MiB, "
              f"peak {max(rss, default=0) / 1024:.1f} MiB ({len(rss)} samples)")
        if violations:
            for v in violations[:30]:
                print(f"serve_load: VIOLATION {v}", file=sys.stderr)
            print(f"serve_load: {len(violations)} violations; server log tail:\n" + "".join(server.log), file=sys.stderr)
            return 1
        print("serve_load: OK (no 5xx, every answer valid, server alive, RSS bounded)")
        return 0
    finally:
        watchdog.cancel()
        server.kill()


if __name__ == "__main__":
    sys.exit(main())
