"""Decode speed per KV cache type at long contexts: optiq vs llama.cpp in one invocation.

usage: python3 bench/kv_speed_bench.py [MODEL.gguf] [--depths 2048,8000] [--types f16,q8_0,q4_0,tq4,tq3]
                                       [--threads T] [--reps R] [--n-gen N]

For each depth D and cache type T: N tokens decoded one at a time after D tokens already in the
context, by `llama-bench -d D -p 0 -n N -ctk T -ctv T -fa on` (types llama.cpp has) and by
`optiq benchmark -d D -p 0 -n N --cache-type-k T --cache-type-v T` (every type), alternating, R
repetitions each; the best run of each counts (the least disturbed by other load). Prints a
Markdown table of tokens per second and each run's decode time as a multiple of llama.cpp's F16
cache and of optiq's F16 cache at the same depth.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
from pathlib import Path

from engine_bench import OPTIQ, ROOT, TOOLS, timed

LLAMA_TYPES = {"f32", "f16", "q8_0", "q5_0", "q5_1", "q4_0", "q4_1", "iq4_nl"}


def llama_decode(model: Path, depth: int, n_gen: int, cache: str, threads: int) -> float:
    out, _ = timed([str(TOOLS / "llama-bench"), "-m", str(model), "-d", str(depth), "-p", "0", "-n", str(n_gen),
                    "-ctk", cache, "-ctv", cache, "-fa", "on", "-t", str(threads), "-r", "1", "-o", "json"])
    return json.loads(out)[0]["avg_ts"]


def optiq_decode(model: Path, depth: int, n_gen: int, cache: str, threads: int) -> float:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OMP_WAIT_POLICY="passive")
    out, _ = timed([str(OPTIQ), "benchmark", str(model), "-d", str(depth), "-p", "0", "-n", str(n_gen), "-r", "1",
                    "-t", str(threads), "--cache-type-k", cache, "--cache-type-v", cache, "--json"], env=env)
    return json.loads(out)["decode_tps"][0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?", default=str(ROOT / ".cache/models/smollm2-135m-instruct-q4_1.gguf"))
    ap.add_argument("--depths", default="2048,8000")
    ap.add_argument("--types", default="f16,q8_0,q4_0,tq4,tq3")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--n-gen", type=int, default=16)
    args = ap.parse_args()
    subprocess.run([ROOT / "scripts/build_llama_tools.sh"], check=True, capture_output=True)
    model = Path(args.model)
    types = args.types.split(",")
    print(f"{model.name}: threads {args.threads}, {args.n_gen} tokens decoded after each depth, "
          f"best of {args.reps} alternating runs\n")
    print("| depth | cache | llama.cpp t/s | optiq t/s | optiq time × llama.cpp F16 | optiq time × optiq F16 |")
    print("|---|---|---|---|---|---|")
    for depth in (int(d) for d in args.depths.split(",")):
        best: dict[tuple[str, str], float] = {}
        for _ in range(args.reps):
            for t in types:
                runs = [("optiq", optiq_decode)] + ([("llama", llama_decode)] if t in LLAMA_TYPES else [])
                for key, fn in runs:
                    tps = fn(model, depth, args.n_gen, t, args.threads)
                    best[(key, t)] = max(best.get((key, t), 0.0), tps)
        llama_f16, optiq_f16 = best.get(("llama", "f16")), best.get(("optiq", "f16"))
        for t in types:
            o = best[("optiq", t)]
            llama = best.get(("llama", t))
            vs_llama = f"{llama_f16 / o:.2f}" if llama_f16 else "–"
            vs_optiq = f"{optiq_f16 / o:.2f}" if optiq_f16 else "–"
            print(f"| {depth} | {t} | {f'{llama:.1f}' if llama else '–'} | {o:.1f} | {vs_llama} | {vs_optiq} |",
                  flush=True)


if __name__ == "__main__":
    main()
