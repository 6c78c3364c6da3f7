"""oracle_perplexity: `optiq perplexity` against llama.cpp's llama-perplexity (compiled from the
llama.cpp source node-llama-cpp pins by scripts/build_llama_tools.sh), on stories260K and the
text in tests/fixtures/stories.txt (-c 128: 24 chunks).

llama-perplexity runs on one thread with an F32 KV cache and no flash attention, the arithmetic
optiq's engine does, pinned to the ggml CPU variant optiq reproduces (llama_tools.py). Checked:
- perplexity of the F32 model: every running per-chunk value and the final estimate within 0.1%,
  its error within 1%; also with optiq's -b 48 (forward calls that cross the scored half) and
  --chunks 10;
- the --kl-divergence-base files both write: same size, header and tokens byte for byte, decoded
  log-probabilities within 2e-3;
- each tool reads the other's base: the F32 model against the F32 base gives KLD ~ 0, the same
  top token everywhere but near-ties, and PPL(base) = the writer's perplexity;
- KL statistics of a model far from its base (F32 against the base of a Q4_0 quantization, mean
  KLD ~0.1): every statistic optiq prints equals llama-perplexity's within rounding;
- KL statistics of optiq's F16 convert against the F32 base: optiq's and llama-perplexity's agree
  within the F16 engines' own difference (see README, "Generation");
- perplexity of a real quantized model (SmolLM2-135M Q4_1), 4 chunks, within 1% or twice the
  distance between two of llama.cpp's own CPU builds, measured in the run;
- where llama.cpp picks another CPU variant on this machine: the F32 perplexities and SmolLM2's
  against that variant too.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from llama_tools import KLD_DONE, NOISE_VARIANT, PINNED, llama, native_variant, relative
from oracle_util import STORIES, Failures, convert, run_optiq, work_dir

TEXT = Path("tests/fixtures/stories.txt")
N_CTX = 128
LLAMA_FLAGS = ["-c", str(N_CTX), "-t", "1", "-tb", "1", "-ctk", "f32", "-ctv", "f32", "-fa", "off"]

f = Failures()


def optiq(*args: str | Path) -> str:
    r = run_optiq("perplexity", *args)
    if r.returncode != 0:
        raise AssertionError(f"optiq perplexity {' '.join(map(str, args))} failed ({r.returncode}): {r.stderr}")
    return r.stdout + "\n" + r.stderr


def running_ppl(out: str) -> list[float]:
    return [float(v) for _, v in re.findall(r"\[(\d+)\](\d+\.\d+),", out)]


def final_estimate(out: str) -> tuple[float, float]:
    m = re.search(r"Final estimate: PPL = (\d+\.\d+) \+/- (\d+\.\d+)", out)
    if not m:
        raise AssertionError(f"no final estimate in:\n{out[-2000:]}")
    return float(m.group(1)), float(m.group(2))


SUMMARY_LINE = re.compile(r"^(\S.*?)\s*:\s+(-?\d+\.\d+)\s*%?(?:\s*±\s*(-?\d+\.\d+))?\s*%?$")


def kld_summary(out: str) -> dict[str, tuple[float, float | None]]:
    """The statistics after '====== Perplexity statistics ======': label -> (value, ± or None)."""
    start = out.find("====== Perplexity statistics")
    if start < 0:
        raise AssertionError(f"no KL divergence summary in:\n{out[-2000:]}")
    stats = {}
    for line in out[start:].splitlines():
        m = SUMMARY_LINE.match(line.strip())
        if m:
            label = " ".join(m.group(1).split())
            stats[label] = (float(m.group(2)), float(m.group(3)) if m.group(3) else None)
    return stats


def chunk_table(out: str) -> list[list[float]]:
    rows = []
    for line in out.splitlines():
        if re.match(r"^\s*\d+\s+\d+\.\d+ ±", line):
            rows.append([float(x) for x in re.findall(r"-?\d+\.\d+", line)])
    return rows


def sci(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.2e}" for v in values) + "]"


def close(a: float, b: float, rel: float, abs_: float = 0.0) -> bool:
    return abs(a - b) <= max(rel * max(abs(a), abs(b)), abs_)


def compare_summaries(name: str, ours: dict, theirs: dict, tol) -> None:
    """tol(label) -> (rel, abs) for the value and its uncertainty."""
    f.check(set(ours) == set(theirs), f"{name}: optiq prints {sorted(set(ours) ^ set(theirs))} differently")
    for label in sorted(set(ours) & set(theirs)):
        rel, abs_ = tol(label)
        (a, da), (b, db) = ours[label], theirs[label]
        f.check(close(a, b, rel, abs_), f"{name}: {label}: optiq {a}, llama.cpp {b}")
        if da is not None and db is not None:
            f.check(close(da, db, max(rel, 0.02), abs_), f"{name}: {label} uncertainty: optiq {da}, llama.cpp {db}")


def read_base(path: Path):
    b = path.read_bytes()
    n_ctx, n_vocab, n_chunk = np.frombuffer(b[8:20], dtype=np.int32)
    head = 20 + 4 * int(n_ctx) * int(n_chunk)
    words = 2 * ((int(n_vocab) + 1) // 2) + 4
    rows = np.frombuffer(b[head:], dtype=np.uint16).reshape(-1, words)
    scale = rows[:, 0:2].copy().view(np.float32)[:, 0]
    min_log_prob = rows[:, 2:4].copy().view(np.float32)[:, 0]
    log_probs = scale[:, None] * rows[:, 4:4 + int(n_vocab)] + min_log_prob[:, None]
    return b[:head], log_probs


work = work_dir("perplexity")

# Perplexity of the F32 model, writing both bases.
optiq_base, llama_base = work / "optiq-f32.base", work / "llama-f32.base"
ours = optiq(STORIES, "-f", TEXT, "-c", N_CTX, "--kl-divergence-base", optiq_base)
theirs = llama("llama-perplexity", "-m", STORIES, "-f", TEXT, *LLAMA_FLAGS, "--kl-divergence-base", llama_base,
               done="Final estimate")
ours_chunks, theirs_chunks = running_ppl(ours), running_ppl(theirs)
f.check(len(theirs_chunks) == 24, f"llama-perplexity scored {len(theirs_chunks)} chunks, expected 24")
f.check(ours_chunks and len(ours_chunks) == len(theirs_chunks),
        f"optiq printed {len(ours_chunks)} chunks, llama-perplexity {len(theirs_chunks)}")
for i, (a, b) in enumerate(zip(ours_chunks, theirs_chunks)):
    f.check(close(a, b, 1e-3), f"chunk {i + 1}: running PPL optiq {a}, llama.cpp {b}")
(ppl, err), (ppl_ref, err_ref) = final_estimate(ours), final_estimate(theirs)
f.check(close(ppl, ppl_ref, 1e-3), f"final PPL: optiq {ppl}, llama.cpp {ppl_ref}")
f.check(close(err, err_ref, 1e-2), f"final PPL error: optiq {err}, llama.cpp {err_ref}")
print(f"PPL (F32, -c {N_CTX}): optiq {ppl} +/- {err}, llama-perplexity {ppl_ref} +/- {err_ref}")

small_batches = running_ppl(optiq(STORIES, "-f", TEXT, "-c", N_CTX, "-b", 48, "--chunks", 10))
f.check(len(small_batches) == 10, f"--chunks 10 printed {len(small_batches)} chunks")
for i, (a, b) in enumerate(zip(small_batches, theirs_chunks)):
    f.check(close(a, b, 1e-3), f"-b 48, chunk {i + 1}: running PPL optiq {a}, llama.cpp {b}")

# The two base files: one layout, the same tokens, log-probabilities within the engines' gap.
f.check(optiq_base.stat().st_size == llama_base.stat().st_size,
        f"base sizes: optiq {optiq_base.stat().st_size}, llama.cpp {llama_base.stat().st_size}")
(ours_head, ours_lp), (theirs_head, theirs_lp) = read_base(optiq_base), read_base(llama_base)
f.check(ours_head == theirs_head, "the base files' headers or token lists differ")
if ours_lp.shape == theirs_lp.shape:
    diff = float(np.abs(ours_lp - theirs_lp).max())
    f.check(diff <= 2e-3, f"base log-probabilities differ by up to {diff}")
    print(f"base files: {ours_lp.shape[0]} rows, log-probabilities within {diff:.2e}")

# Each reads the other's base; the F32 model against an F32 base is (almost) no divergence.
for reader, run, base in (("optiq", lambda b: optiq(STORIES, "--kl-divergence", "--kl-divergence-base", b), llama_base),
                          ("llama.cpp", lambda b: llama("llama-perplexity", "-m", STORIES, *LLAMA_FLAGS,
                                                       "--kl-divergence", "--kl-divergence-base", b, done=KLD_DONE), optiq_base)):
    s = kld_summary(run(base))
    f.check(abs(s["Mean KLD"][0]) <= 1e-5, f"{reader} reading the other's F32 base: mean KLD {s['Mean KLD'][0]}")
    f.check(s["Same top p"][0] >= 99.0, f"{reader} reading the other's F32 base: same top p {s['Same top p'][0]}%")
    f.check(close(s["Mean PPL(base)"][0], ppl_ref, 1e-3),
            f"{reader} reading the other's base: PPL(base) {s['Mean PPL(base)'][0]}, the writer's PPL {ppl_ref}")

# A base far from the model: a Q4_0 quantization's log-probabilities (llama.cpp's own), the F32
# model evaluated by both. Same base, nearly the same logits: every statistic must agree.
q4 = work / "stories-q4_0.gguf"
llama("llama-quantize", STORIES, q4, "Q4_0")
q4_base = work / "llama-q4_0.base"
llama("llama-perplexity", "-m", q4, "-f", TEXT, *LLAMA_FLAGS, "--kl-divergence-base", q4_base)
ours_out = optiq(STORIES, "--kl-divergence", "--kl-divergence-base", q4_base, "-f", TEXT)
theirs_out = llama("llama-perplexity", "-m", STORIES, *LLAMA_FLAGS, "--kl-divergence", "--kl-divergence-base", q4_base,
                   done=KLD_DONE)
ours_s, theirs_s = kld_summary(ours_out), kld_summary(theirs_out)
f.check(theirs_s.get("Mean KLD", (0,))[0] > 0.01, f"the Q4_0 base is too close to test with: {theirs_s.get('Mean KLD')}")
compare_summaries("F32 vs Q4_0 base", ours_s, theirs_s, lambda label: (2e-3, 2e-5 if "KLD" in label else 2e-3))
ours_rows, theirs_rows = chunk_table(ours_out), chunk_table(theirs_out)
f.check(len(ours_rows) == len(theirs_rows) == 24, f"chunk rows: optiq {len(ours_rows)}, llama.cpp {len(theirs_rows)}")
for i, (a, b) in enumerate(zip(ours_rows, theirs_rows)):
    f.check(all(close(x, y, 2e-3, 2e-5) for x, y in zip(a, b)), f"F32 vs Q4_0 base, chunk {i + 1}: optiq {a}, llama.cpp {b}")
print(f"F32 vs Q4_0 base: mean KLD optiq {ours_s['Mean KLD'][0]}, llama-perplexity {theirs_s['Mean KLD'][0]}")

# optiq's F16 convert against the F32 base. optiq and llama.cpp compute F16 products
# differently (llama.cpp rounds activations to f16), so the per-token divergences are of the
# size of that difference; the statistics must agree to within it. Units: KLD in nats, Δp and
# same top p in percent.
f16 = convert(STORIES, work / "stories-f16.gguf", "f16")
ours_s = kld_summary(optiq(f16, "--kl-divergence", "--kl-divergence-base", llama_base))
theirs_s = kld_summary(llama("llama-perplexity", "-m", f16, *LLAMA_FLAGS, "--kl-divergence", "--kl-divergence-base",
                             llama_base, done=KLD_DONE))


def f16_tolerance(label: str) -> tuple[float, float]:
    if "KLD" in label:
        return 0.0, 5e-6
    if "Δp" in label:
        return 0.0, 0.15
    if label == "Same top p":
        return 0.0, 0.5
    if "PPL(Q)-PPL(base)" in label:
        return 0.0, 1e-3  # a difference of two PPLs ~4.9 that agree to 1e-4 relative or so
    return 1e-3, 1e-4  # PPL values and their ratio


compare_summaries("F16 vs F32 base", ours_s, theirs_s, f16_tolerance)
print(f"F16 vs F32 base: mean KLD optiq {ours_s['Mean KLD'][0]}, llama-perplexity {theirs_s['Mean KLD'][0]}; "
      f"same top p {ours_s['Same top p'][0]}% / {theirs_s['Same top p'][0]}%")

# A real quantized model (SmolLM2-135M-Instruct Q4_1, from scripts/fetch_models.sh; llama-bpe
# vocabulary, no BOS swap issue), 4 chunks. Both engines round activations to Q8_1 for its Q4_1
# products, and SmolLM2's very large activations make those 8-bit steps coarse, so last-bit
# differences upstream (f32 summation order, e.g. optiq's sgemm attention) sometimes cross a
# rounding boundary and move a token's log-probability visibly: llama.cpp's own haswell and
# sandybridge builds are 0.93% apart after the first chunk (64 scored tokens). The bound per
# running value is 1% (observed optiq-haswell: 0.56% and 0.63% after 1 and 4 chunks) or twice
# that measured distance, whichever is larger (optiq is one more summation order; see
# check_kv_cache_types.py, "The bounds").
smollm = Path(os.environ["OPTIQ_CACHE"]) / "models" / "smollm2-135m-instruct-q4_1.gguf"
SMOLLM_FLAGS = ["-f", TEXT, *LLAMA_FLAGS, "--chunks", 4]
if f.check(smollm.exists(), f"{smollm} is missing; run scripts/fetch_models.sh"):
    ours = running_ppl(optiq(smollm, "-f", TEXT, "-c", N_CTX, "--chunks", 4))
    theirs = running_ppl(llama("llama-perplexity", "-m", smollm, *SMOLLM_FLAGS, done="Final estimate"))
    noise = relative(running_ppl(llama("llama-perplexity", "-m", smollm, *SMOLLM_FLAGS, done="Final estimate",
                                       variant=NOISE_VARIANT)), theirs)
    bounds = [max(1e-2, 2 * n) for n in noise]
    f.check(len(ours) == len(theirs) == len(noise) == 4,
            f"SmolLM2 Q4_1: optiq printed {len(ours)} chunks, llama.cpp {len(theirs)}")
    for i, (a, b, bound) in enumerate(zip(ours, theirs, bounds)):
        f.check(close(a, b, bound), f"SmolLM2 Q4_1 chunk {i + 1}: running PPL optiq {a}, llama.cpp {b} (bound {bound:.2e})")
    print(f"SmolLM2 Q4_1, 4 chunks: optiq {ours}, llama-perplexity ({PINNED}) {theirs}; relative differences "
          f"{sci(relative(ours, theirs))}, bounds {sci(bounds)} ({NOISE_VARIANT} is {sci(noise)} from {PINNED})")

# Agreement with the variant llama.cpp picks on this CPU, when that is not the pinned one. F32
# products differ between variants in the last bits only, which cannot move a perplexity of the
# F32 model by 1e-3: the same bound as above. SmolLM2's bound grows by llama.cpp's measured
# distance between that variant and the pinned one.
native = native_variant()
if native == PINNED:
    print(f"llama.cpp runs {PINNED} on this CPU: the checks above are the agreement checks")
else:
    out = llama("llama-perplexity", "-m", STORIES, "-f", TEXT, *LLAMA_FLAGS, done="Final estimate", variant=native)
    native_chunks, (native_ppl, _) = running_ppl(out), final_estimate(out)
    f.check(len(native_chunks) == len(ours_chunks) and all(close(a, b, 1e-3) for a, b in zip(ours_chunks, native_chunks)),
            f"F32 running PPL: optiq {ours_chunks}, llama.cpp's {native} {native_chunks}")
    f.check(close(ppl, native_ppl, 1e-3), f"F32 final PPL: optiq {ppl}, llama.cpp's {native} {native_ppl}")
    print(f"PPL (F32) against llama.cpp's {native}: optiq {ppl}, llama.cpp {native_ppl}")
    if smollm.exists():
        other = running_ppl(llama("llama-perplexity", "-m", smollm, *SMOLLM_FLAGS, done="Final estimate", variant=native))
        spread, gap = relative(other, theirs), relative(ours, other)
        f.check(len(other) == len(ours) and all(g <= b + s for g, b, s in zip(gap, bounds, spread)),
                f"SmolLM2 Q4_1 against llama.cpp's {native}: optiq {ours}, llama.cpp {other}; differences {sci(gap)} "
                f"beyond {sci(bounds)} + {sci(spread)}")
        print(f"SmolLM2 Q4_1 against llama.cpp's {native}: {other}, relative differences {sci(gap)} "
              f"(bounds {sci(bounds)} + {sci(spread)})")

f.finish("oracle_perplexity")
