"""oracle_lora: LoRA adapters against numpy, gguf-py and llama.cpp, on stories260K (llama, F32).

Generated PEFT adapters (adapter_config.json + adapter_model.safetensors written with the
safetensors package) in every shape variant: plain alpha/r on all seven projections, rsLoRA with
rank_pattern and alpha_pattern on some modules, fan_in_fan_out (which PEFT turns off for Linear
layers), F16 and BF16 factors. Checked:
- `optiq lora merge --type f32`: every merged tensor equals numpy's W + s·B·A, B's rows of the
  q/k projections permuted into llama.cpp's rotary order as the converter permutes the base;
  tensors no adapter touches are copied byte for byte (gguf-py reads both files);
- `optiq lora convert`: the GGUF-LoRA file holds general.type adapter, adapter.type lora, and
  factors whose alpha / r · lora_b · lora_a is each module's s·B·A (per-module scales folded);
- perplexity: optiq with the PEFT folder, optiq with the GGUF-LoRA file, llama-perplexity with
  --lora on that file, and llama-perplexity on the merged model agree within 1e-3, and differ
  from the base's;
- the same on a real quantized base (SmolLM2-135M Q4_1, rank 8 on every projection) within 1%;
  merged into it with the stored types kept, the file has the base's types and llama.cpp's
  perplexity on it is within 3% of its --lora one;
- optiq eval --task ppl --lora gives perplexity's number; optiq benchmark --lora runs;
- --lora PATH:SCALE scales the delta (scale 0 gives the base's perplexity) and two adapters stack
  as their merge;
- bad adapters are refused with exit code 2 and a message naming the tensor or field: another
  base's shapes, NaN, rank 0 factors, an embedding target, a rank that differs from the config,
  a GGUF model passed as an adapter.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import gguf
import numpy as np
from safetensors.numpy import load_file, save_file

from llama_tools import llama
from lora_util import LLAMA_FLAGS, MODULES, N_CTX, TEXT, Base, close, final_ppl, make_peft as make_peft_in, optiq_ok
from oracle_util import STORIES, Failures, run_optiq, work_dir

f = Failures()
work = work_dir("lora")
N_LAYER = Base(STORIES).n_layer
WEIGHTS = {t.name: np.array(t.data, dtype=np.float32) for t in gguf.GGUFReader(STORIES).tensors}  # [out, in]


def make_peft(name: str, *args, **kwargs):
    return make_peft_in(work / name, *args, **kwargs)




def check_merge(name: str, merged: Path, deltas: dict) -> None:
    out = gguf.GGUFReader(merged)
    got = {t.name: t for t in out.tensors}
    f.check(set(got) == set(WEIGHTS), f"{name}: merged tensors {sorted(set(got) ^ set(WEIGHTS))[:5]} differ from the base's")
    worst = 0.0
    for tname, w in WEIGHTS.items():
        t = got.get(tname)
        if t is None:
            continue
        values = np.array(t.data, dtype=np.float32)
        if tname in deltas:
            want = w.astype(np.float64) + deltas[tname]
            err = float(np.abs(values - want).max() / max(np.abs(want).max(), 1e-30))
            worst = max(worst, err)
            f.check(err <= 1e-5, f"{name}: {tname} differs from W + s·B·A by {err:.2e} (relative to its largest value)")
        else:
            f.check(np.array_equal(values, w), f"{name}: {tname} (not adapted) changed")
    print(f"{name}: merged {len(deltas)} tensors, within {worst:.1e} of numpy's W + s·B·A")


def check_gguf_lora(name: str, path: Path, deltas: dict) -> None:
    r = gguf.GGUFReader(path)
    def value(key):
        fl = r.fields[key]
        return fl.parts[fl.data[0]]
    f.check(bytes(value("general.type")).decode() == "adapter", f"{name}: general.type")
    f.check(bytes(value("adapter.type")).decode() == "lora", f"{name}: adapter.type")
    alpha = float(value("adapter.lora.alpha")[0])
    tensors = {t.name: np.array(t.data, dtype=np.float64) for t in r.tensors}
    for target, delta in deltas.items():
        a, b = tensors.get(target + ".lora_a"), tensors.get(target + ".lora_b")
        if not f.check(a is not None and b is not None, f"{name}: {target}'s factors are missing"):
            continue
        got = alpha / a.shape[0] * (b @ a)  # gguf-py: lora_a [r, in], lora_b [out, r]
        err = float(np.abs(got - delta).max() / max(np.abs(delta).max(), 1e-30))
        f.check(err <= 1e-5, f"{name}: {target}: alpha/r · B·A differs from s·B·A by {err:.2e}")


def ppl_optiq(*extra) -> float:
    return final_ppl(optiq_ok("perplexity", STORIES, "-f", TEXT, "-c", N_CTX, "-t", 1, *extra))


def ppl_llama(model: Path, *extra) -> float:
    return final_ppl(llama("llama-perplexity", "-m", model, "-f", TEXT, *LLAMA_FLAGS, *extra, done="Final estimate"))


base_ppl = ppl_optiq()
variants = {
    "plain": make_peft("plain", 4, 8.0, 1),
    "rslora-patterns": make_peft(
        "rslora-patterns", 4, 16.0, 2, ranks={f"model.layers.{il}.self_attn.v_proj": 2 for il in range(N_LAYER)},
        extra_config={"use_rslora": True, "rank_pattern": {"v_proj": 2}, "alpha_pattern": {r"layers\.1\.mlp\.up_proj": 3.0}}),
    "fan-in-fan-out-f16": make_peft("fan-in-fan-out-f16", 3, 6.0, 3, layers=[0, 2, 4], dtype=np.float16,
                                     modules={k: v for k, v in MODULES.items() if "attn" in k},
                                     extra_config={"fan_in_fan_out": True}),
}
for name, (peft, deltas) in variants.items():
    merged = work / f"{name}-merged.gguf"
    optiq_ok("lora", "merge", STORIES, peft, "-o", merged, "--type", "f32")
    check_merge(name, merged, deltas)
    adapter = work / f"{name}.gguf"
    optiq_ok("lora", "convert", peft, "--base", STORIES, "-o", adapter)
    check_gguf_lora(name, adapter, deltas)
    ours_peft, ours_gguf = ppl_optiq("--lora", peft), ppl_optiq("--lora", adapter)
    theirs, theirs_merged = ppl_llama(STORIES, "--lora", adapter), ppl_llama(merged)
    print(f"{name}: PPL base {base_ppl}; optiq --lora PEFT {ours_peft}, --lora GGUF {ours_gguf}; "
          f"llama-perplexity --lora {theirs}, merged {theirs_merged}")
    f.check(close(ours_peft, theirs), f"{name}: optiq --lora (PEFT) PPL {ours_peft}, llama.cpp --lora {theirs}")
    f.check(close(ours_gguf, theirs), f"{name}: optiq --lora (GGUF) PPL {ours_gguf}, llama.cpp --lora {theirs}")
    f.check(close(theirs_merged, theirs), f"{name}: llama.cpp merged PPL {theirs_merged}, --lora {theirs}")
    f.check(not close(ours_peft, base_ppl, 1e-2), f"{name}: the adapter did not change the PPL ({ours_peft} vs {base_ppl})")

# Scales and stacking.
plain, plain_deltas = variants["plain"]
f.check(close(ppl_optiq("--lora", f"{plain}:0"), base_ppl, 1e-6), "--lora PATH:0 is not the base model")
half = ppl_optiq("--lora", f"{plain}:0.5")
theirs_half = ppl_llama(STORIES, "--lora-scaled", f"{work / 'plain.gguf'}:0.5")
f.check(close(half, theirs_half), f"--lora PATH:0.5: optiq {half}, llama.cpp --lora-scaled 0.5 {theirs_half}")
second, _ = variants["rslora-patterns"]
stacked = ppl_optiq("--lora", plain, "--lora", second)
both = work / "both-merged.gguf"
optiq_ok("lora", "merge", STORIES, plain, second, "-o", both, "--type", "f32")
f.check(close(stacked, ppl_llama(both)), f"two stacked adapters: optiq {stacked}, llama.cpp on their merge")

# The other commands that take --lora: eval's perplexity is perplexity's; benchmark runs with it.
eval_json = work / "eval.json"
optiq_ok("eval", STORIES, "--task", "ppl", "--data", TEXT, "-c", N_CTX, "-t", 1, "--lora", plain, "--json", eval_json)
eval_ppl = json.loads(eval_json.read_text())["results"]["ppl"]["metrics"]["ppl"]
plain_ppl = ppl_optiq("--lora", plain)
# (perplexity prints 4 decimals)
f.check(close(eval_ppl, plain_ppl, 1e-4), f"optiq eval --task ppl --lora: {eval_ppl}, optiq perplexity --lora: {plain_ppl}")
bench = optiq_ok("benchmark", STORIES, "-p", 16, "-n", 8, "-r", 1, "--lora", plain)
f.check("LoRA " in bench and "decode" in bench, f"optiq benchmark --lora printed:\n{bench[-800:]}")

# A real quantized base: SmolLM2-135M Q4_1 (9 query / 3 K/V heads of 64), a rank-8 adapter on every
# projection of every block, 4 chunks: optiq --lora (PEFT) against llama-perplexity --lora.
smollm = Path(os.environ["OPTIQ_CACHE"]) / "models" / "smollm2-135m-instruct-q4_1.gguf"
smol_peft, _ = make_peft("smollm2", 8, 16.0, 7, base=Base(smollm), spread=0.02)
smol_gguf = work / "smollm2.gguf"
optiq_ok("lora", "convert", smol_peft, "--base", smollm, "-o", smol_gguf)
smol_flags = ["-f", TEXT, "-c", N_CTX, "--chunks", 4]
smol_base = final_ppl(optiq_ok("perplexity", smollm, *smol_flags, "-t", 1))
smol_ours = final_ppl(optiq_ok("perplexity", smollm, *smol_flags, "-t", 1, "--lora", smol_peft))
smol_theirs = final_ppl(llama("llama-perplexity", "-m", smollm, "-f", TEXT, *LLAMA_FLAGS, "--chunks", 4, "--lora", smol_gguf,
                              done="Final estimate"))
print(f"SmolLM2 Q4_1: PPL base {smol_base}; optiq --lora {smol_ours}; llama-perplexity --lora {smol_theirs}")
f.check(close(smol_ours, smol_theirs, 1e-2), f"SmolLM2: optiq --lora PPL {smol_ours}, llama.cpp --lora {smol_theirs}")
f.check(not close(smol_ours, smol_base, 1e-2), f"SmolLM2: the adapter did not change the PPL ({smol_ours} vs {smol_base})")
# Merged into the quantized file, each tensor keeping its stored type (requantized): the same
# types as the base, and llama.cpp's perplexity on it near its --lora one (requantizing the
# merged Q4_1 rows adds its own rounding).
smol_merged = work / "smollm2-merged.gguf"
optiq_ok("lora", "merge", smollm, smol_peft, "-o", smol_merged)
types = lambda path: {t.name: t.tensor_type.name for t in gguf.GGUFReader(path).tensors}
f.check(types(smol_merged) == types(smollm), "SmolLM2 merge: tensor types differ from the base's")
smol_merged_ppl = final_ppl(llama("llama-perplexity", "-m", smol_merged, "-f", TEXT, *LLAMA_FLAGS, "--chunks", 4,
                                  done="Final estimate"))
print(f"SmolLM2 Q4_1 merged (types kept): llama-perplexity {smol_merged_ppl}")
f.check(close(smol_merged_ppl, smol_theirs, 3e-2), f"SmolLM2 merged PPL {smol_merged_ppl}, --lora {smol_theirs}")

# Bad adapters: exit code 2, one line naming what is wrong.
def refused(name: str, adapter: Path, expect: str) -> None:
    r = run_optiq("perplexity", STORIES, "-f", TEXT, "-c", N_CTX, "--lora", adapter)
    f.check(r.returncode == 2 and re.search(expect, r.stderr) is not None,
            f"{name}: exit {r.returncode}, stderr {r.stderr.strip()[-300:]!r} (expected /{expect}/)")


def broken(name: str, mutate) -> Path:
    src = variants["plain"][0]
    d = work / name
    d.mkdir()
    config = json.loads((src / "adapter_config.json").read_text())
    tensors = load_file(str(src / "adapter_model.safetensors"))
    config, tensors = mutate(config, tensors)
    (d / "adapter_config.json").write_text(json.dumps(config))
    save_file(tensors, str(d / "adapter_model.safetensors"))
    return d


def wider(c, t):
    t["base_model.model.model.layers.0.mlp.up_proj.lora_B.weight"] = np.zeros((200, 4), np.float32)
    return c, t


def with_nan(c, t):
    t["base_model.model.model.layers.2.self_attn.o_proj.lora_A.weight"][0, 0] = np.nan
    return c, t


def rank_zero(c, t):
    for k in [k for k in t if "layers.3.mlp.down_proj" in k]:
        t[k] = np.zeros((0, t[k].shape[1]) if "lora_A" in k else (t[k].shape[0], 0), np.float32)
    return c, t


def embedding(c, t):
    t["base_model.model.model.embed_tokens.lora_A.weight"] = np.zeros((4, 512), np.float32)
    t["base_model.model.model.embed_tokens.lora_B.weight"] = np.zeros((64, 4), np.float32)
    return c, t


def other_rank(c, t):
    return {**c, "r": 8}, t


refused("another base's shapes", broken("wider", wider), r"blk\.0\.ffn_up\.weight.*200 x 64")
refused("NaN", broken("nan", with_nan), r"blk\.2\.attn_output\.weight.*NaN")
refused("rank 0", broken("rank0", rank_zero), r"layers\.3\.mlp\.down_proj|blk\.3\.ffn_down.*rank")
refused("embedding target", broken("embedding", embedding), r"embed_tokens: not a module the engine can adapt")
refused("rank differs from the config", broken("other-rank", other_rank), r"rank 4 in the file, 8 in the config")
refused("a model as the adapter", STORIES, r"not a LoRA adapter")

f.finish("oracle_lora")
