"""Encode throughput of optiq against Hugging Face `tokenizers`, one thread, on a few MB of
prose and code; run by bench/tokenize_bench.sh, which sets RAYON_NUM_THREADS=1 and
TOKENIZERS_PARALLELISM=false. Prints a Markdown table (see docs/benchmarks.md).

optiq has no mode that times encoding alone, so each run of `optiq tokenize MODEL --ids -f TEXT`
is timed whole and the best time of the same command on an empty file (process start, loading
the tokenizer) is subtracted; what remains also holds formatting and writing the ids. Each
`tokenizers` run loads a fresh Tokenizer and times `encode` alone, so that neither side starts
with a warm BPE cache.
Usage: tokenize_bench.py OPTIQ SHARED_DIR WORK_DIR RUNS
"""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tokenizers import Tokenizer

TARGET_BYTES = 4_000_000
CODE_EVERY = 10  # one HumanEval problem after every 10 GSM8K problems: about 15% code


def bench_text(shared: Path) -> str:
    """GSM8K questions and answers with HumanEval prompts and solutions mixed in, in file order
    (cycling when a source runs out) until TARGET_BYTES of UTF-8."""
    with open(shared / "data/gsm8k/train.jsonl", encoding="utf-8") as f:
        prose = [json.loads(line) for line in f]
    with gzip.open(shared / "data/humaneval/HumanEval-first40.jsonl.gz", "rt", encoding="utf-8") as f:
        code = [json.loads(line) for line in f]
    parts, size, i = [], 0, 0
    while size < TARGET_BYTES:
        p = prose[i % len(prose)]
        part = p["question"] + "\n" + p["answer"] + "\n\n"
        if i % CODE_EVERY == CODE_EVERY - 1:
            c = code[(i // CODE_EVERY) % len(code)]
            part += c["prompt"] + c["canonical_solution"] + "\n"
        parts.append(part)
        size += len(part.encode("utf-8"))
        i += 1
    return "".join(parts)


def best_wall(cmd: list[str], runs: int) -> tuple[float, str]:
    best, out = float("inf"), ""
    for _ in range(runs):
        start = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        if r.returncode != 0:
            sys.exit(f"bench: {' '.join(cmd)} failed ({r.returncode}): {r.stderr}")
        best, out = min(best, elapsed), r.stdout
    return best, out


def hf_best(load, text: str, runs: int) -> tuple[float, list[int]]:
    best, ids = float("inf"), []
    for _ in range(runs):
        tok = load()
        start = time.perf_counter()
        enc = tok.encode(text)
        best, ids = min(best, time.perf_counter() - start), enc.ids
    return best, ids


def mismatches(a: list[int], b: list[int]) -> str:
    if a == b:
        return "yes"
    first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    differing = sum(x != y for x, y in zip(a, b)) if len(a) == len(b) else "-"
    return f"no: {len(a)} vs {len(b)} ids, first difference at {first}, {differing} positions differ"


def main() -> None:
    optiq, shared, work, runs = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
    # The Qwen2.5 folder has no tokenizer.json: the HF side is the tokenizer transformers'
    # Qwen2 converter builds, as the oracle test that checks optiq against it defines it.
    os.environ.setdefault("OPTIQ", optiq)
    os.environ.setdefault("OPTIQ_SHARED", str(shared))
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests/oracle"))
    from check_tokenizers import qwen2_from_vocab_merges

    text = bench_text(shared)
    text_file, empty_file = work / "tokenize_bench.txt", work / "empty.txt"
    text_file.write_text(text, encoding="utf-8")
    empty_file.write_text("")
    mb = len(text.encode("utf-8")) / 1e6

    models = shared / "models"
    cases = [
        ("SmolLM2 (tokenizer.json)", models / "templates/smollm2-135m-instruct", None),
        ("Qwen2.5 (vocab.json + merges.txt)", models / "qwen2.5-tokenizer", qwen2_from_vocab_merges),
        ("Mistral v0.3 (tokenizer.json)", models / "templates/mistral-7b-instruct-v0.3", None),
    ]
    print(f"text: {mb:.2f} MB ({text.count(chr(10))} lines), best of {runs} runs, MB = 10^6 bytes")
    print()
    print("| tokenizer | MB | ids | optiq load s | optiq encode s | optiq MB/s | HF encode s | HF MB/s "
          "| optiq / HF | ids equal |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, folder, build in cases:
        load = (lambda: build(folder)) if build else (lambda: Tokenizer.from_file(str(folder / "tokenizer.json")))
        full_s, out = best_wall([optiq, "tokenize", str(folder), "--ids", "-f", str(text_file)], runs)
        load_s, _ = best_wall([optiq, "tokenize", str(folder), "--ids", "-f", str(empty_file)], runs)
        optiq_s = full_s - load_s
        hf_s, hf_ids = hf_best(load, text, runs)
        equal = mismatches(json.loads(out), hf_ids)
        print(f"| {name} | {mb:.2f} | {len(hf_ids)} | {load_s:.3f} | {optiq_s:.3f} | {mb / optiq_s:.2f} | {hf_s:.3f} "
              f"| {mb / hf_s:.2f} | {hf_s / optiq_s:.2f}x | {equal} |")


if __name__ == "__main__":
    main()
