"""Engine speed: optiq vs llama.cpp on the same GGUF files, run alternately in one invocation.

usage: python3 bench/engine_bench.py [--threads T] [--reps R] [--quick]

For each model: llama-bench (from scripts/build_llama_tools.sh; node-llama-cpp's prebuilt CPU
libraries) and `optiq benchmark`, each with prefill 512 tokens and decode 128 tokens, the same
thread count, one repetition per run, alternating R times; the best run of each counts (the
least disturbed by other load). Peak RSS of each process is read by /usr/bin/time.
Models: SmolLM2-135M-Instruct as F16 (optiq convert of the PyPI Q4_1 file), Q8_0 and Q4_K_M
(llama-quantize of that F16), and the PyPI Q4_1 file itself. Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache"
OPTIQ = ROOT / "build/optiq"
TOOLS = CACHE / "llama-tools"
WORK = CACHE / "bench-engine"


def timed(cmd: list[str], env=None) -> tuple[str, float]:
    """Runs cmd under /usr/bin/time; returns stdout and peak RSS in MiB."""
    r = subprocess.run(["/usr/bin/time", "-f", "MAXRSS %M", *cmd], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
    rss = float(re.search(r"MAXRSS (\d+)", r.stderr).group(1)) / 1024
    return r.stdout, rss


def prepare() -> list[tuple[str, Path]]:
    WORK.mkdir(parents=True, exist_ok=True)
    q41 = CACHE / "models/smollm2-135m-instruct-q4_1.gguf"
    if not q41.exists():
        subprocess.run([ROOT / "scripts/fetch_models.sh"], check=True)
    f16 = WORK / "smollm2-f16.gguf"
    if not f16.exists():
        subprocess.run([OPTIQ, "convert", q41, "-o", f16, "--outtype", "f16"], check=True, capture_output=True)
    files = [("F16", f16)]
    for t in ("Q8_0", "Q4_K_M"):
        out = WORK / f"smollm2-{t.lower()}.gguf"
        if not out.exists():
            subprocess.run([TOOLS / "llama-quantize", f16, out, t], check=True, capture_output=True)
        files.append((t, out))
    files.append(("Q4_1 (PyPI)", q41))
    return files


def llama_bench(model: Path, threads: int) -> tuple[float, float, float]:
    out, rss = timed([str(TOOLS / "llama-bench"), "-m", str(model), "-p", "512", "-n", "128", "-t", str(threads),
                      "-r", "1", "-o", "json"])
    rows = json.loads(out)
    pp = next(r["avg_ts"] for r in rows if r["n_prompt"] > 0)
    tg = next(r["avg_ts"] for r in rows if r["n_gen"] > 0)
    return pp, tg, rss


def optiq_bench(model: Path, threads: int) -> tuple[float, float, float]:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    out, rss = timed([str(OPTIQ), "benchmark", str(model), "-p", "512", "-n", "128", "-r", "1", "-t", str(threads),
                      "--json"], env=env)
    j = json.loads(out)
    return j["prefill_tps"][0], j["decode_tps"][0], rss


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    subprocess.run([ROOT / "scripts/build_llama_tools.sh"], check=True, capture_output=True)
    print(f"threads {args.threads}, best of {args.reps} alternating runs, prefill 512 / decode 128 tokens\n")
    print("| model | llama.cpp prefill t/s | optiq prefill t/s | ratio | llama.cpp decode t/s | optiq decode t/s "
          "| ratio | llama.cpp peak RSS MiB | optiq peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, path in prepare():
        best = {"l": [0.0, 0.0, 0.0], "o": [0.0, 0.0, 0.0]}
        for _ in range(args.reps):
            for key, fn in (("l", llama_bench), ("o", optiq_bench)):
                pp, tg, rss = fn(path, args.threads)
                b = best[key]
                b[0], b[1], b[2] = max(b[0], pp), max(b[1], tg), max(b[2], rss)
        l, o = best["l"], best["o"]
        print(f"| {name} | {l[0]:.1f} | {o[0]:.1f} | {o[0] / l[0]:.2f} | {l[1]:.1f} | {o[1]:.1f} | {o[1] / l[1]:.2f} "
              f"| {l[2]:.0f} | {o[2]:.0f} |", flush=True)


if __name__ == "__main__":
    main()
