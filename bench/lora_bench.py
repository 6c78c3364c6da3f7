"""LoRA adapters at inference: what an unmerged adapter costs optiq's engine and server.

usage: python3 bench/lora_bench.py [MODEL.gguf] [--threads 2] [--reps 3] [--rank 16] [--streams 8] [--max-tokens 48]

1. Decode: `optiq benchmark MODEL -p 0 -n 64` without and with `--lora` (a rank-R adapter on all
   seven projections of every block, random factors, as a PEFT folder), alternating --reps
   times, best run of each; prints tokens/s and the slowdown. Goal: at most 10% slower.
2. Serving: `optiq serve MODEL --parallel S` with S adapters mounted; S concurrent clients each
   send 2 completions (temperature 0, --max-tokens tokens), once all naming one adapter
   ("model": "bench+a0") and once each its own ("bench+a0" .. "bench+a{S-1}"): aggregate
   generated tokens/s of each, best of --reps.
3. Memory per resident adapter: the server's VmRSS before and after mounting S adapters
   (POST /lora-adapters), divided by S, beside the factors' own bytes (f16 in a server).

Standard library plus numpy and safetensors (the test venv); adapters are written under
.cache/lora-bench/.
"""
from __future__ import annotations

import argparse
import http.client
import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".cache/lora-bench"
OPTIQ = str(ROOT / "build/optiq")
PROJ = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}


def shapes(model: Path) -> dict[str, tuple[int, int]]:
    """GGUF name -> (out, in) of every matrix, from `optiq info --json`."""
    out = subprocess.run([OPTIQ, "info", str(model), "--json"], capture_output=True, text=True, check=True).stdout
    return {t["name"]: (t["shape"][1], t["shape"][0]) for t in json.loads(out)["tensors"] if len(t["shape"]) == 2}


def make_adapter(folder: Path, dims: dict, rank: int, seed: int) -> Path:
    if (folder / "adapter_model.safetensors").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n_layer = 1 + max(int(m.group(1)) for name in dims if (m := re.match(r"blk\.(\d+)\.", name)))
    tensors = {}
    for il in range(n_layer):
        for hf, gg in PROJ.items():
            out_dim, in_dim = dims[f"blk.{il}.{gg}.weight"]
            prefix = f"base_model.model.model.layers.{il}.{hf}"
            tensors[f"{prefix}.lora_A.weight"] = rng.normal(0, 0.02, (rank, in_dim)).astype(np.float32)
            tensors[f"{prefix}.lora_B.weight"] = rng.normal(0, 0.02, (out_dim, rank)).astype(np.float32)
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": rank, "lora_alpha": 2 * rank,
                                                            "target_modules": sorted(p.split(".")[1] for p in PROJ)}))
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    return folder


def decode_tps(model: Path, threads: int, extra: list[str]) -> float:
    r = subprocess.run([OPTIQ, "benchmark", str(model), "-p", "0", "-n", "64", "-t", str(threads), "-r", "1", "--json", *extra],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"optiq benchmark failed: {r.stderr[-2000:]}")
    return max(json.loads(r.stdout)["decode_tps"])


def post(port: int, path: str, body: dict, method: str = "POST") -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request(method, path, json.dumps(body), {"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = json.loads(resp.read() or b"{}")
    conn.close()
    return resp.status, data


def rss_mib(pid: int) -> float:
    return int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text()).group(1)) / 1024


def serve_tps(port: int, names: list[str], max_tokens: int) -> float:
    generated, lock = [0], threading.Lock()
    def client(i: int, name: str) -> None:
        for k in range(2):
            status, out = post(port, "/v1/completions", {"model": name, "prompt": f"Story {i}.{k}: once upon a time",
                                                         "max_tokens": max_tokens, "temperature": 0})
            if status != 200:
                sys.exit(f"{name}: HTTP {status} {out}")
            with lock:
                generated[0] += out["usage"]["completion_tokens"]
    threads = [threading.Thread(target=client, args=(i, n)) for i, n in enumerate(names)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return generated[0] / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?", default=str(ROOT / ".cache/models/smollm2-135m-instruct-q4_1.gguf"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--streams", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=48)
    args = ap.parse_args()
    model = Path(args.model)
    dims = shapes(model)
    adapters = [make_adapter(WORK / f"{model.stem}-r{args.rank}-{i}", dims, args.rank, i) for i in range(args.streams)]

    base, lora = [], []
    for _ in range(args.reps):
        base.append(decode_tps(model, args.threads, []))
        lora.append(decode_tps(model, args.threads, ["--lora", str(adapters[0])]))
    b, l = max(base), max(lora)
    print(f"{model.name}: -t {args.threads}, decode 64 tokens, best of {args.reps} alternating runs")
    print(f"  decode: base {b:.1f} tok/s, with a rank-{args.rank} adapter on all projections {l:.1f} tok/s "
          f"({100 * (1 - l / b):.1f}% slower)")

    proc = subprocess.Popen([OPTIQ, "serve", str(model), "--port", "0", "--alias", "bench", "-t", str(args.threads),
                             "--parallel", str(args.streams), "-c", "512"], stderr=subprocess.PIPE, text=True)
    port = None
    while port is None:
        line = proc.stderr.readline()
        if not line:
            sys.exit("optiq serve did not start")
        if m := re.search(r"listening on http://127\.0\.0\.1:(\d+)", line):
            port = int(m.group(1))
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
    try:
        serve_tps(port, ["bench"], 4)  # warm-up
        before = rss_mib(proc.pid)
        bytes_each = 0
        for i, a in enumerate(adapters):
            status, out = post(port, "/lora-adapters", {"name": f"a{i}", "path": str(a)})
            if status != 200:
                sys.exit(f"POST /lora-adapters: {status} {out}")
            bytes_each = out["bytes"]
        after = rss_mib(proc.pid)
        one = max(serve_tps(port, ["bench+a0"] * args.streams, args.max_tokens) for _ in range(args.reps))
        each = max(serve_tps(port, [f"bench+a{i}" for i in range(args.streams)], args.max_tokens) for _ in range(args.reps))
        plain = max(serve_tps(port, ["bench"] * args.streams, args.max_tokens) for _ in range(args.reps))
    finally:
        proc.terminate()
        proc.wait()
    print(f"  serve, {args.streams} streams x 2 completions of {args.max_tokens} tokens: base {plain:.1f} tok/s, "
          f"one adapter for all {one:.1f} tok/s, a different adapter each {each:.1f} tok/s "
          f"(different/one = {each / one:.2f})")
    print(f"  memory: {(after - before) / args.streams:.1f} MiB RSS per resident adapter "
          f"({bytes_each / 2**20:.1f} MiB of factors each, f16 as the server holds them)")


if __name__ == "__main__":
    main()
