"""`optiq serve` against llama.cpp's `llama-server`: streamed chat throughput, time to first token
and the prompt cache, both servers in one invocation.

usage: python3 bench/serve_bench.py [MODEL.gguf] [--concurrency 1,4,16] [--threads 2] [--max-tokens 64]
                                    [--ctx 1024] [--requests-per-stream 3] [--reps 2] [--cache-convs 3]
                                    [--optiq build/optiq] [--llama-server .cache/llama-tools/llama-server]
                                    [--idle-below 0.3] [--idle-wait 600] [--optiq-arg ARG ...] [--llama-arg ARG ...]

For each concurrency N, each server is started on a free loopback port with the same GGUF, the
same threads (-t) and N slots (--parallel N); optiq gets -c CTX (tokens per slot) and
llama-server -c CTX*N with --no-kv-unified (its -c is the total, split evenly over the slots).
Otherwise each server keeps its defaults (KV cache: optiq f32, llama-server f16 with flash
attention "auto"). The two servers run alternately (the order flips every level and every
repetition), one at a time. After one warm-up request, N client threads each send
--requests-per-stream streamed chat requests one after another (POST /v1/chat/completions,
"stream": true, "stream_options": {"include_usage": true}, "temperature": 0, "max_tokens"
fixed), every request of a run with its own prompt, so that no prompt reuses another's beyond
the chat template's shared system prefix; both servers get the same prompts. Generated tokens
are the final usage's completion_tokens; time to first token (TTFT) runs from sending the
request to the first SSE chunk whose delta has non-empty content. Aggregate tokens/s = all
generated tokens / wall time from the first request sent to the last stream ended. With
--reps R the run with the most tokens/s counts (the least disturbed by other load). Each run's
line also shows the CPU cores the server, the client and all other processes used during it
(/proc), since on a small machine a concurrent job distorts the numbers, and before each run
the script waits (--idle-wait, 600 s at most) until the CPUs are busy with less than
--idle-below cores (0.3).

Prompt cache: in the first level's servers, --cache-convs two-turn chats: turn 1 a ~500-token
user message, turn 2 that message, turn 1's reply (as the server streamed it) and a new user
message. Prints the median of TTFT(turn 2) / TTFT(turn 1) and the cached prompt tokens each
server reports (usage.prompt_tokens_details.cached_tokens).

Standard library only. llama-server comes from scripts/build_llama_server.sh (built if missing:
about 7 minutes on 2 cores). Server logs go to .cache/serve-bench/.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".cache/serve-bench"

TOPICS = [
    "lighthouses", "volcanoes", "honeybees", "the printing press", "glaciers", "submarines", "coral reefs",
    "the violin", "desert cacti", "railway signals", "owls", "the compass", "tea ceremonies", "comets",
    "windmills", "octopuses", "paper money", "thunderstorms", "chess openings", "the bicycle",
    "mushrooms", "sailing ships", "penguins", "the telescope", "rice farming", "suspension bridges",
    "wolves", "glassblowing", "the moon landing", "rainforests", "clocks", "tornadoes", "the piano",
    "bread baking", "salmon migration", "castles", "hot air balloons", "earthquakes", "the alphabet",
    "elephants", "solar panels", "caves", "the steam engine", "jellyfish", "pottery", "snowflakes",
    "the internet", "bamboo", "camels", "fireworks", "maps", "whales", "the olympic games", "tides",
    "beetles", "libraries", "rivers", "bees and flowers", "satellites", "origami", "foxes", "canals",
    "the microscope", "dinosaurs", "kites", "deserts", "lighthouse keepers", "wind turbines", "frogs",
]
STYLES = ["Write a detailed essay about {t}.", "Explain to a child how {t} work or what they are.",
          "Write a long story in which {t} play an important part.", "Describe the history of {t} in detail."]
COLORS = ["red", "blue", "green", "yellow", "purple", "orange", "grey", "white", "black", "brown"]
ANIMALS = ["fox", "owl", "whale", "horse", "cat", "dog", "rabbit", "eagle", "otter", "tiger", "goat", "crow"]
CITIES = ["Paris", "Lima", "Oslo", "Cairo", "Tokyo", "Quito", "Rome", "Delhi", "Accra", "Perth", "Riga"]


PROMPTS = [s.format(t=t) for s in STYLES for t in TOPICS]


def stream_prompts(n: int, per_stream: int) -> list[list[str]]:
    """N streams' prompts, all different; the same for both servers and every repetition."""
    if n * per_stream > len(PROMPTS):
        raise SystemExit(f"{n} streams x {per_stream} requests: only {len(PROMPTS)} distinct prompts")
    return [[PROMPTS[s * per_stream + k] for k in range(per_stream)] for s in range(n)]


def long_document(seed: int) -> str:
    """A ~500-token first turn for the prompt-cache chats, different for every seed."""
    lines = []
    for i in range(24):
        k = seed * 31 + i * 7
        lines.append(f"{i + 1}. The {COLORS[k % len(COLORS)]} {ANIMALS[(k // 3) % len(ANIMALS)]} "
                     f"lives in {CITIES[(k // 5) % len(CITIES)]} and eats {(k * 13) % 97 + 3} berries a day.")
    return "Here is a list of animals.\n" + "\n".join(lines) + "\nSummarize the list above in a few sentences."


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One server process on loopback; stdout/stderr go to a log file."""

    def __init__(self, name: str, cmd: list[str], port: int | None, log: Path, env: dict | None = None) -> None:
        self.name, self.log_path = name, log
        self.log = open(log, "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.port = port
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"{name} exited ({self.proc.returncode}):\n{' '.join(cmd)}\n{log.read_text()[-3000:]}")
            if self.port is None:
                m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", log.read_text())
                if m:
                    self.port = int(m.group(1))
            if self.port is not None and self.healthy():
                return
            time.sleep(0.2)
        self.stop()
        raise SystemExit(f"{name} did not become healthy in 120 s:\n{log.read_text()[-3000:]}")

    def healthy(self) -> bool:
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            c.request("GET", "/health")
            ok = c.getresponse().status == 200
            c.close()
            return ok
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def start_optiq(args: argparse.Namespace, n: int) -> Server:
    cmd = [args.optiq, "serve", args.model, "--port", "0", "-c", str(args.ctx), "-t", str(args.threads),
           "--parallel", str(n), "--alias", "bench", *args.optiq_arg]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    return Server("optiq", cmd, None, WORK / f"optiq-np{n}.log", env)


def start_llama(args: argparse.Namespace, n: int) -> Server:
    port = free_port()
    cmd = [args.llama_server, "-m", args.model, "--host", "127.0.0.1", "--port", str(port), "-c", str(args.ctx * n),
           "-t", str(args.threads), "-tb", str(args.threads), "--parallel", str(n), "--no-kv-unified",
           "--alias", "bench", "--no-webui", *args.llama_arg]
    return Server("llama-server", cmd, port, WORK / f"llama-server-np{n}.log")


def chat(port: int, messages: list[dict], max_tokens: int) -> dict:
    """One streamed chat completion: TTFT, end time, usage and the text."""
    body = json.dumps({"model": "bench", "messages": messages, "stream": True,
                       "stream_options": {"include_usage": True}, "temperature": 0, "max_tokens": max_tokens})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    start = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    if resp.status != 200:
        raise RuntimeError(f"HTTP {resp.status}: {resp.read()[:500]!r}")
    ttft = None
    usage = None
    text = []
    chunks = 0
    done = False
    while True:
        line = resp.readline()
        if not line:
            break
        line = line.strip()
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            done = True
            break
        ev = json.loads(data)
        for ch in ev.get("choices") or []:
            piece = (ch.get("delta") or {}).get("content")
            if piece:
                if ttft is None:
                    ttft = time.perf_counter() - start
                text.append(piece)
                chunks += 1
        if ev.get("usage"):
            usage = ev["usage"]
    end = time.perf_counter()
    conn.close()
    if not done:
        raise RuntimeError("stream ended without data: [DONE]")
    if usage is None:
        raise RuntimeError("no usage in the stream (stream_options.include_usage)")
    return {"start": start, "end": end, "ttft": ttft, "usage": usage, "text": "".join(text), "chunks": chunks}


def cpu_ticks(pid: int | str = "self") -> int:
    """utime + stime of a process (all its threads), in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def machine_busy_ticks() -> int:
    """Busy clock ticks of all CPUs together (user, nice, system, irq, softirq, steal)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v[0] + v[1] + v[2] + v[5] + v[6] + v[7]


def wait_idle(below: float, limit: float) -> float:
    """Waits (at most `limit` seconds) until the machine's CPUs are busy with less than `below`
    cores over 3 s (between runs, when no server of ours runs); returns the last reading."""
    deadline = time.time() + limit
    hz = os.sysconf("SC_CLK_TCK")
    while True:
        a = machine_busy_ticks()
        time.sleep(3)
        busy = (machine_busy_ticks() - a) / hz / 3
        if busy < below or time.time() >= deadline:
            return busy
        print(f"  (waiting: other processes use {busy:.2f} cores)", file=sys.stderr, flush=True)


def throughput(server: Server, n: int, args: argparse.Namespace) -> dict:
    """N streams, each sending its requests one after another."""
    chat(server.port, [{"role": "user", "content": "Say hello."}], 8)  # warm-up
    per_stream = stream_prompts(n, args.requests_per_stream)
    results: list[dict] = []
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(n + 1)

    def stream(mine: list[str]) -> None:
        barrier.wait()
        for p in mine:
            try:
                r = chat(server.port, [{"role": "user", "content": p}], args.max_tokens)
            except Exception as e:  # noqa: BLE001 - reported below
                with lock:
                    errors.append(f"{type(e).__name__}: {e}")
                return
            with lock:
                results.append(r)

    threads = [threading.Thread(target=stream, args=(mine,)) for mine in per_stream]
    for t in threads:
        t.start()
    ticks0 = (machine_busy_ticks(), cpu_ticks(server.proc.pid), cpu_ticks())
    barrier.wait()
    for t in threads:
        t.join()
    ticks1 = (machine_busy_ticks(), cpu_ticks(server.proc.pid), cpu_ticks())
    if errors:
        raise SystemExit(f"{server.name} --parallel {n}: {len(errors)} failed requests, e.g. {errors[0]}\n"
                         f"(log: {server.log_path})")
    wall = max(r["end"] for r in results) - min(r["start"] for r in results)
    gen = sum(r["usage"]["completion_tokens"] for r in results)
    ttfts = [r["ttft"] for r in results if r["ttft"] is not None]
    # CPU time the server, this client and everything else used during the run, in cores: other
    # processes' share says how much a concurrent job may have disturbed the numbers
    hz = os.sysconf("SC_CLK_TCK")
    used = [(b - a) / hz / wall for a, b in zip(ticks0, ticks1)]
    return {"tps": gen / wall, "server_cores": used[1], "client_cores": used[2],
            "other_cores": max(0.0, used[0] - used[1] - used[2]), "wall": wall, "generated": gen, "requests": len(results),
            "ttft_p50": statistics.median(ttfts) if ttfts else float("nan"),
            "short": sum(r["usage"]["completion_tokens"] < args.max_tokens for r in results),
            "prompt_tokens": statistics.mean(r["usage"]["prompt_tokens"] for r in results),
            "chunks": sum(r["chunks"] for r in results)}


def cached_tokens(usage: dict) -> int:
    return (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0


def prompt_cache(server: Server, args: argparse.Namespace) -> dict:
    """Two-turn chats: TTFT of turn 2 (prompt = turn 1 + reply + new message) / TTFT of turn 1."""
    ratios, t1s, t2s, p2, c2 = [], [], [], [], []
    for k in range(args.cache_convs):
        first = [{"role": "user", "content": long_document(k)}]
        a = chat(server.port, first, args.max_tokens)
        second = first + [{"role": "assistant", "content": a["text"]},
                          {"role": "user", "content": "Which animal in the list eats the most berries?"}]
        b = chat(server.port, second, args.max_tokens)
        t1s.append(a["ttft"])
        t2s.append(b["ttft"])
        ratios.append(b["ttft"] / a["ttft"])
        p2.append(b["usage"]["prompt_tokens"])
        c2.append(cached_tokens(b["usage"]))
    return {"ratio": statistics.median(ratios), "ttft1": statistics.median(t1s), "ttft2": statistics.median(t2s),
            "prompt1": a["usage"]["prompt_tokens"], "prompt2": statistics.median(p2), "cached2": statistics.median(c2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?", default=str(ROOT / ".cache/models/smollm2-135m-instruct-q4_1.gguf"))
    ap.add_argument("--concurrency", default="1,4,16")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--ctx", type=int, default=1024, help="tokens per slot (llama-server gets CTX*N in all)")
    ap.add_argument("--requests-per-stream", type=int, default=3)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--cache-convs", type=int, default=3, help="two-turn chats for the prompt cache (0: skip)")
    ap.add_argument("--idle-below", type=float, default=0.3,
                    help="before each run wait until other processes use fewer CPU cores than this (0: don't)")
    ap.add_argument("--idle-wait", type=float, default=600, help="longest wait for that, seconds")
    ap.add_argument("--optiq", default=str(ROOT / "build/optiq"))
    ap.add_argument("--llama-server", default=str(ROOT / ".cache/llama-tools/llama-server"))
    ap.add_argument("--optiq-arg", action="append", default=[], help="extra optiq serve argument (repeatable)")
    ap.add_argument("--llama-arg", action="append", default=[], help="extra llama-server argument (repeatable)")
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    if not Path(args.llama_server).exists():
        print("building llama-server (scripts/build_llama_server.sh)...", file=sys.stderr)
        args.llama_server = subprocess.run([ROOT / "scripts/build_llama_server.sh"], check=True,
                                           stdout=subprocess.PIPE, text=True).stdout.strip().splitlines()[-1]
    levels = [int(c) for c in args.concurrency.split(",")]
    starters = {"optiq": start_optiq, "llama-server": start_llama}
    best: dict[tuple[str, int], dict] = {}
    cache: dict[str, dict] = {}
    print(f"{Path(args.model).name}: -t {args.threads}, {args.ctx} tokens per slot, max_tokens {args.max_tokens}, "
          f"temperature 0, {args.requests_per_stream} streamed requests per stream, best of {args.reps} alternating runs",
          flush=True)
    for rep in range(args.reps):
        for i, n in enumerate(levels):
            order = ["optiq", "llama-server"] if (rep + i) % 2 == 0 else ["llama-server", "optiq"]
            for name in order:
                if args.idle_below > 0:
                    busy = wait_idle(args.idle_below, args.idle_wait)
                    if busy >= args.idle_below:
                        print(f"  (not idle after {args.idle_wait:.0f} s: other processes use {busy:.2f} cores)",
                              flush=True)
                server = starters[name](args, n)
                try:
                    r = throughput(server, n, args)
                    if rep == 0 and i == 0 and args.cache_convs > 0:
                        cache[name] = prompt_cache(server, args)
                finally:
                    server.stop()
                print(f"  rep {rep + 1} N={n} {name}: {r['tps']:.1f} tok/s ({r['generated']} tokens, {r['requests']} "
                      f"requests, {r['wall']:.2f} s), TTFT p50 {r['ttft_p50'] * 1000:.0f} ms, "
                      f"mean prompt {r['prompt_tokens']:.1f} tokens, {r['short']} requests under max_tokens; CPU cores "
                      f"used: server {r['server_cores']:.2f}, client {r['client_cores']:.2f}, "
                      f"other processes {r['other_cores']:.2f}",
                      flush=True)
                if (name, n) not in best or r["tps"] > best[(name, n)]["tps"]:
                    best[(name, n)] = r
    print()
    print("| concurrency | optiq tok/s | llama-server tok/s | ratio | optiq TTFT p50 | llama-server TTFT p50 |")
    print("|---|---|---|---|---|---|")
    for n in levels:
        o, l = best[("optiq", n)], best[("llama-server", n)]
        print(f"| {n} | {o['tps']:.1f} | {l['tps']:.1f} | {o['tps'] / l['tps']:.2f} | {o['ttft_p50'] * 1000:.0f} ms "
              f"| {l['ttft_p50'] * 1000:.0f} ms |")
    if cache:
        print()
        print(f"prompt cache (--parallel {levels[0]}, {args.cache_convs} two-turn chats, medians):")
        for name in ("optiq", "llama-server"):
            c = cache[name]
            print(f"  {name}: turn-2 TTFT = {c['ratio']:.2f} x turn-1 TTFT ({c['ttft2'] * 1000:.0f} ms vs "
                  f"{c['ttft1'] * 1000:.0f} ms; prompt {c['prompt1']} -> {c['prompt2']:.0f} tokens, "
                  f"{c['cached2']:.0f} reported cached)")


if __name__ == "__main__":
    main()
