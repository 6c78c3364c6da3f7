#!/usr/bin/env python3
"""Acceptance table of `optiq convert` (docs/results.md): at the sizes of llama.cpp's Q3_K_M,
Q4_K_M and Q5_K_M for a model, the mean KL divergence against the reference of

- optiq convert --target-size MIX (measured mixed precision),
- llama.cpp's MIX recipe as `optiq quantize` makes it, without and with an importance matrix
  (the calibration imatrix optiq convert wrote, so both see the same data),
- uniform K-quants (`--pure`) with that imatrix,

on a held-out text that is not in the calibration mix (built here from the GSM8K, HumanEval
and MMLU development files in ../shared/data). The reference is the source model dequantized
to F32. llama-perplexity (llama.cpp, built by scripts/build_llama_tools.sh) writes the base
log-probabilities from it and measures every file — so every file is also loaded by llama.cpp —
and `optiq perplexity --kl-divergence` measures the same files against the same base.

    python3 bench/convert_results.py MODEL.gguf [--label NAME] [--chunks 8] [--threads 2]
                                     [--mixes Q3_K_M,Q4_K_M,Q5_K_M] [--candidates Q3_K,Q4_K,Q8_0]
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "oracle"))
from llama_tools import KLD_DONE, llama  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OPTIQ = Path(os.environ.get("OPTIQ_BIN", ROOT / "build" / "optiq"))
SHARED = ROOT.parent / "shared"
MIXES = ["Q3_K_M", "Q4_K_M", "Q5_K_M"]
UNIFORM = ["Q3_K", "Q4_K", "Q5_K", "Q6_K"]
CANDIDATES = "Q3_K,Q4_K,Q5_K,Q6_K,Q8_0"


def run(*args, **kw) -> str:
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit(f"failed ({r.returncode}): {' '.join(map(str, args))}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return r.stdout + r.stderr


def held_out_text(path: Path) -> None:
    """Text the calibration mix never contains: GSM8K solutions, HumanEval programs, MMLU items."""
    parts = []
    with open(SHARED / "data/gsm8k/train.jsonl") as f:
        for i, line in enumerate(f):
            if i >= 60:
                break
            j = json.loads(line)
            parts.append(f"Question: {j['question']}\nAnswer: {j['answer']}\n")
    with gzip.open(SHARED / "data/humaneval/HumanEval-first40.jsonl.gz", "rt") as f:
        for line in list(f)[:25]:
            j = json.loads(line)
            parts.append(j["prompt"] + j["canonical_solution"] + "\n")
    for csv in sorted((SHARED / "data/mmlu/dev").glob("*.csv"))[:20]:
        parts.append(csv.read_text())
    path.write_text("\n".join(parts))


def tensor_bytes(gguf: Path) -> int:
    return json.loads(run(OPTIQ, "info", "--json", gguf))["tensor_bytes"]


def mean_kld(out: str) -> float:
    m = re.search(r"Mean\s+KLD:\s+([0-9.eE+-]+)", out)
    if not m:
        sys.exit("no 'Mean KLD' in:\n" + out[-2000:])
    return float(m.group(1))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", type=Path)
    ap.add_argument("--label", default=None)
    ap.add_argument("--chunks", type=int, default=8)
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", type=Path, default=ROOT / "build" / "convert-results")
    ap.add_argument("--convert-args", default="", help="extra arguments for optiq convert")
    ap.add_argument("--mixes", default=",".join(MIXES), help="llama.cpp mixes whose sizes are compared")
    ap.add_argument("--candidates", default=CANDIDATES, help="candidate types of the per-mix runs")
    ap.add_argument("--default-only", action="store_true",
                    help="only the default optiq convert (bits 4,8 at Q4_K_M's size), no candidate-type runs")
    a = ap.parse_args()
    label = a.label or a.model.stem
    work = a.work / label
    work.mkdir(parents=True, exist_ok=True)
    t = str(a.threads)

    text = work / "held-out.txt"
    held_out_text(text)
    ref = work / "reference-f32.gguf"
    if not ref.exists():
        run(OPTIQ, "convert", a.model, "--outtype", "f32", "-o", ref)
    base = work / "base.kld"
    if not base.exists():
        llama("llama-perplexity", "-m", ref, "-f", text, "-c", a.ctx, "--chunks", a.chunks, "-t", t,
              "--kl-divergence-base", base)

    files: list[tuple[str, str, Path, float]] = []  # (target, method, file, convert seconds)
    sensitivity = work / "sensitivity.jsonl"
    mixes = a.mixes.split(",")
    for mix in ["Q4_K_M default"] + ([] if a.default_only else mixes):
        default = mix.endswith("default")
        mix = mix.split()[0]
        out = work / (f"optiq-{mix}" + ("-default" if default else ""))
        extra = [] if default else ["--candidate-types", a.candidates, "--target-size", mix]
        if sensitivity.exists():  # every run measures the same calibration tokens: share the pairs
            out.mkdir(exist_ok=True)
            shutil.copy(sensitivity, out / "sensitivity.jsonl")
        t0 = time.time()
        log = run(OPTIQ, "convert", a.model, "-o", out, "-t", t, *extra, *a.convert_args.split())
        seconds = time.time() - t0
        (out / "convert.log").write_text(log)
        shutil.copy(out / "sensitivity.jsonl", sensitivity)
        gguf = next(p for p in out.glob("*-optiq.gguf"))
        method = "optiq convert (bits 4,8)" if default else f"optiq convert ({a.candidates})"
        files.append((mix, method, gguf, seconds))
    # The fast proxy at the default settings, beside the exact checkpoint (for Spearman's rho).
    fast = work / "optiq-Q4_K_M-fast"
    fast.mkdir(exist_ok=True)
    shutil.copy(sensitivity, fast / "sensitivity.jsonl")
    t0 = time.time()
    log = run(OPTIQ, "convert", a.model, "-o", fast, "-t", t, "--sensitivity", "fast", *a.convert_args.split())
    (fast / "convert.log").write_text(log)
    rho = json.loads((fast / "optiq-report.json").read_text())["totals"]["spearman_fast_vs_exact"]
    files.append(("Q4_K_M", f"optiq convert --sensitivity fast (rho {rho:.3f})", next(fast.glob("*-optiq.gguf")),
                  time.time() - t0))
    imatrix = work / "optiq-Q4_K_M-default" / "imatrix.gguf"
    for mix in mixes:
        for with_imatrix in (False, True):
            out = work / f"{mix}{'-imatrix' if with_imatrix else ''}.gguf"
            run(OPTIQ, "quantize", a.model, "-o", out, "--type", mix, "-t", t,
                *(["--imatrix", imatrix] if with_imatrix else []))
            files.append((mix, "llama.cpp recipe" + (" + imatrix" if with_imatrix else ""), out, 0))
    for u in UNIFORM:
        out = work / f"uniform-{u}.gguf"
        run(OPTIQ, "quantize", a.model, "-o", out, "--type", u, "--pure", "--imatrix", imatrix, "-t", t)
        files.append((f"uniform {u}", "uniform + imatrix", out, 0))

    rows = []
    for target, method, gguf, seconds in files:
        theirs = mean_kld(llama("llama-perplexity", "-m", gguf, "-t", t, "--kl-divergence", "--kl-divergence-base", base,
                                done=KLD_DONE))
        ours = mean_kld(run(OPTIQ, "perplexity", gguf, "-t", t, "--kl-divergence", "--kl-divergence-base", base))
        rows.append({"target": target, "method": method, "file": gguf.name, "bytes": tensor_bytes(gguf),
                     "kld_llama_cpp": theirs, "kld_optiq": ours, "convert_seconds": round(seconds, 1)})
        print(f"{target:10s} {method:38s} {rows[-1]['bytes'] / 1e6:9.3f} MB  KLD llama.cpp {theirs:.6f}  optiq {ours:.6f}",
              flush=True)
    n_params = json.loads(run(OPTIQ, "info", "--json", a.model))["parameters"]
    (work / "results.json").write_text(json.dumps({"model": label, "n_params": n_params, "rows": rows}, indent=2))

    print(f"\n| target size | method | MB | bpw | mean KLD (llama.cpp) | mean KLD (optiq) |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['target']} | {r['method']} | {r['bytes'] / 1e6:.3f} | {8 * r['bytes'] / n_params:.3f} | "
              f"{r['kld_llama_cpp']:.6f} | {r['kld_optiq']:.6f} |")


if __name__ == "__main__":
    main()
