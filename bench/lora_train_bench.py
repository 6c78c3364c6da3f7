"""Training speed and memory of `optiq lora train`.

usage: python3 bench/lora_train_bench.py [MODEL.gguf] [--threads 2] [--steps 6] [--seq-len 256] [--batch-size 4]

Writes --batch-size × --steps examples of about --seq-len tokens ({"text"} lines from
tests/fixtures/stories.txt, repeated) and trains a rank-8 adapter on all seven projections of
every block, once without and once with --grad-checkpoint. For each run it prints training
tokens/s (tokens through the model per second of training steps), peak RSS (the process's
ru_maxrss) and the split of the step time into forward, head (final norm, vocabulary projection,
cross-entropy and its gradient), backward and optimizer, from the run's optiq_lora_config.json.
Beside them, in the same run, the inference references on the same model and text with a
--seq-len context: `optiq perplexity` (peak RSS), llama.cpp's llama-perplexity (peak RSS) and
llama-bench's prefill of --seq-len tokens (tokens/s; both from scripts/build_llama_tools.sh); the ratios say what a
training token costs against llama.cpp's forward pass over one and how far training memory is
from llama.cpp's inference memory. llama.cpp has no trainer of adapters on a quantized base to
compare with (its finetune example trains full F32 weights). Files go under
.cache/lora-train-bench/.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "oracle"))
from llama_tools import machine_summary, tool_path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".cache/lora-train-bench"
OPTIQ = str(ROOT / "build/optiq")
DEFAULT_MODEL = ROOT / ".cache/models/smollm2-135m-instruct-q4_1.gguf"


def peak_rss_mib(cmd: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    """Runs cmd in a child process of a fresh python so that ru_maxrss is that command's alone."""
    probe = ("import resource, subprocess, sys, json;"
             "r = subprocess.run(sys.argv[1:], capture_output=True, text=True);"
             "print(json.dumps({'rc': r.returncode, 'err': r.stderr[-3000:],"
             " 'rss': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))")
    out = subprocess.run([sys.executable, "-c", probe, *cmd], capture_output=True, text=True, check=True).stdout
    res = json.loads(out)
    if res["rc"] != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {res['err']}")
    return res["rss"] / 1024, subprocess.CompletedProcess(cmd, res["rc"], "", res["err"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?", default=str(DEFAULT_MODEL))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=4)
    a = ap.parse_args()

    WORK.mkdir(parents=True, exist_ok=True)
    words = (ROOT / "tests/fixtures/stories.txt").read_text().split()
    # ~1.3 tokens per word for these stories: enough words that every example is cut at --seq-len.
    per = a.seq_len
    data = WORK / "train.jsonl"
    with data.open("w") as fh:
        for i in range(a.batch_size * a.steps):
            chunk = [words[(i * 37 + j) % len(words)] for j in range(per)]
            fh.write(json.dumps({"text": " ".join(chunk)}) + "\n")

    print(machine_summary())
    print(f"model {a.model}, {a.threads} threads, {a.steps} steps of {a.batch_size} examples of {a.seq_len} tokens")
    rows = []
    for ckpt in [False, True]:
        out = WORK / ("ckpt" if ckpt else "plain")
        shutil.rmtree(out, ignore_errors=True)
        cmd = [OPTIQ, "lora", "train", a.model, "--data", str(data), "-o", str(out), "--iters", str(a.steps),
               "--batch-size", str(a.batch_size), "--seq-len", str(a.seq_len), "-t", str(a.threads), "--eval-every", "0"]
        if ckpt:
            cmd.append("--grad-checkpoint")
        rss, _ = peak_rss_mib(cmd)
        c = json.loads((out / "optiq_lora_config.json").read_text())
        t = c["training"]
        s = t["seconds"]
        step = s["train"] / t["steps"]
        rows.append((("--grad-checkpoint" if ckpt else "plain"), t["tokens_per_second"], rss, step,
                     s["forward"] / t["steps"], s["head"] / t["steps"], s["backward"] / t["steps"], s["optimizer"] / t["steps"]))
    # Inference memory for comparison: perplexity over the same text with one --seq-len context.
    text = WORK / "text.txt"
    text.write_text(" ".join(words[: a.seq_len * 4]))
    infer_rss, _ = peak_rss_mib([OPTIQ, "perplexity", a.model, "-f", str(text), "-c", str(a.seq_len), "--chunks", "1",
                                 "-t", str(a.threads)])
    llama_rss, _ = peak_rss_mib([str(tool_path("llama-perplexity", None)), "-m", a.model, "-f", str(text), "-c",
                                 str(a.seq_len), "--chunks", "1", "-t", str(a.threads), "-tb", str(a.threads)])
    bench = subprocess.run([str(tool_path("llama-bench", None)), "-m", a.model, "-p", str(a.seq_len), "-n", "0", "-t",
                            str(a.threads), "-r", "3", "-o", "json"], capture_output=True, text=True, check=True)
    llama_tps = float(json.loads(bench.stdout)[0]["avg_ts"])
    print(f"\n| run | training tok/s | peak RSS MiB | s/step | forward | head | backward | optimizer |")
    print("|---|---|---|---|---|---|---|---|")
    for name, tps, rss, step, fw, hd, bw, op in rows:
        print(f"| {name} | {tps:.1f} | {rss:.0f} | {step:.2f} | {fw:.2f} | {hd:.2f} | {bw:.2f} | {op:.3f} |")
    print(f"| optiq perplexity -c {a.seq_len} (inference) | | {infer_rss:.0f} | | | | | |")
    print(f"| llama.cpp inference: llama-bench -p {a.seq_len}, llama-perplexity -c {a.seq_len} | {llama_tps:.1f} (forward only) | {llama_rss:.0f} | | | | | |")
    print()
    for name, tps, rss, *_ in rows:
        print(f"{name}: training tok/s {tps / llama_tps:.3f}x llama.cpp's forward tok/s; peak RSS {rss / llama_rss:.2f}x llama-perplexity's")


if __name__ == "__main__":
    main()
