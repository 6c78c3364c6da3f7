"""oracle_lora_train: `optiq lora train` on stories260K (llama, F32), its outputs read by the
safetensors package, gguf-py and llama.cpp.

- A run on {"text"} lines lowers the validation loss; its PEFT folder holds the HF names and
  [r, in] / [out, r] shapes, with alpha_i / r_i equal to the trained scale for every module;
- llama-perplexity --lora adapter.gguf and optiq perplexity --lora on the PEFT folder agree
  within 1e-3 and differ from the base; `optiq lora merge` of the folder, run by
  llama-perplexity, agrees too;
- by_bits (from an optiq convert report) and by_kl (from its sensitivity checkpoint) give mixed
  ranks at no more than uniform's parameter count, written into PEFT's rank_pattern and
  alpha_pattern; by_bits gives a tensor with more bits at least the rank of one with fewer;
- a run killed with SIGKILL after a saved state and started again ends with the same adapter
  bytes as an uninterrupted run;
- a bad data line is refused with exit code 2 naming the file and line.
"""
from __future__ import annotations

import json
import signal
import struct
import subprocess
import time
from pathlib import Path

import gguf
import numpy as np
from safetensors.numpy import load_file

from llama_tools import llama
from lora_util import LLAMA_FLAGS, N_CTX, TEXT, close, final_ppl, optiq_ok
from oracle_util import OPTIQ, STORIES, Failures, run_optiq, work_dir

f = Failures()
work = work_dir("lora_train")
# Data: the fixture's sentences as {"text"} lines, the last ones held out.
sentences = [s.strip() + "." for s in TEXT.read_text().replace("\n", " ").split(".") if len(s.strip()) > 20]
data = work / "data"
data.mkdir(exist_ok=True)
(data / "train.jsonl").write_text("".join(json.dumps({"text": s}) + "\n" for s in sentences[:-8]))
(data / "valid.jsonl").write_text("".join(json.dumps({"text": s}) + "\n" for s in sentences[-8:]))
TRAIN = ["--data", data, "--rank", "4", "--alpha", "8", "--lr", "1e-2", "--seq-len", "64", "-t", "1"]


def train(out: Path, *extra) -> dict:
    optiq_ok("lora", "train", STORIES, *TRAIN, "-o", out, *extra)
    return json.loads((out / "optiq_lora_config.json").read_text())


# --- a uniform run, its files and llama.cpp ---------------------------------------------------
out = work / "uniform"
config = train(out, "--iters", "12", "--eval-every", "6")
valid = config["training"]["valid_curve"]
print(f"uniform: validation loss {valid[0]['loss']:.4f} at step 0, {valid[-1]['loss']:.4f} at step {valid[-1]['step']}")
f.check(valid[-1]["loss"] < valid[0]["loss"] - 0.1, f"validation loss did not fall: {valid}")

tensors = load_file(out / "adapter_model.safetensors")
shapes = {t.name: (int(t.shape[1]), int(t.shape[0])) for t in gguf.GGUFReader(STORIES).tensors if len(t.shape) == 2}
HF = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
      "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}


def check_peft(name: str, out: Path, config: dict) -> None:
    """The PEFT files against optiq_lora_config.json: names, shapes, ranks, alpha / r."""
    pc = json.loads((out / "adapter_config.json").read_text())
    ts = load_file(out / "adapter_model.safetensors")
    f.check(pc["peft_type"] == "LORA" and pc["r"] == config["rank_rule"]["base_rank"], f"{name}: config {pc}")
    scale = config["rank_rule"]["alpha"] / config["rank_rule"]["base_rank"]
    for target, rank in config["ranks"].items():
        _, il, module, _ = target.split(".")
        path = f"model.layers.{il}.{HF[module]}"
        a, b = ts.get(f"base_model.model.{path}.lora_A.weight"), ts.get(f"base_model.model.{path}.lora_B.weight")
        out_dim, in_dim = shapes[target]
        if a is None or b is None or a.shape != (rank, in_dim) or b.shape != (out_dim, rank):
            f.check(False, f"{name}: {path}: factors missing or misshapen for rank {rank}")
            continue
        r = pc["rank_pattern"].get(path, pc["r"])
        alpha = pc["alpha_pattern"].get(path, pc["lora_alpha"])
        f.check(r == rank and abs(alpha / r - scale) < 1e-9 * scale, f"{name}: {path}: PEFT r {r} alpha {alpha}, trained rank {rank}")


check_peft("uniform", out, config)
f.check(len(tensors) == 2 * 5 * 7, f"uniform: {len(tensors)} tensors, expected every projection of 5 blocks")
f.check(any(np.abs(t).max() > 0 for k, t in tensors.items() if "lora_B" in k), "every B is still zero after training")

base = final_ppl(optiq_ok("perplexity", STORIES, "-f", TEXT, "-c", N_CTX, "-t", 1))
ours = final_ppl(optiq_ok("perplexity", STORIES, "-f", TEXT, "-c", N_CTX, "-t", 1, "--lora", out))
theirs = final_ppl(llama("llama-perplexity", "-m", STORIES, "-f", TEXT, *LLAMA_FLAGS, "--lora", out / "adapter.gguf",
                         done="Final estimate"))
merged = work / "merged.gguf"
optiq_ok("lora", "merge", STORIES, out, "-o", merged, "--type", "f32")
theirs_merged = final_ppl(llama("llama-perplexity", "-m", merged, "-f", TEXT, *LLAMA_FLAGS, done="Final estimate"))
print(f"trained adapter: PPL base {base}; optiq --lora PEFT {ours}; llama-perplexity --lora adapter.gguf {theirs}, merged {theirs_merged}")
f.check(close(ours, theirs), f"optiq --lora (PEFT) PPL {ours}, llama.cpp --lora {theirs}")
f.check(close(theirs_merged, theirs), f"llama.cpp merged PPL {theirs_merged}, --lora {theirs}")
f.check(not close(ours, base, 1e-2), f"the trained adapter leaves the base's PPL {base}")
info = optiq_ok("lora", "info", out)
f.check("parameters" in info and "validation" in info, f"optiq lora info printed: {info}")

# --- rank rules from an optiq convert of the same model ---------------------------------------
convert = work / "convert"
optiq_ok("convert", STORIES, "-o", convert, "--n-calibration", "2", "--candidate-bits", "4,8", "--target-bpw", "8", "-t", "1")
uniform_params = config["n_params"]
report = json.loads((convert / "optiq-report.json").read_text())
chosen = {t["name"]: t["chosen"] for t in report["tensors"]}
for rule in ["by_bits", "by_kl"]:
    rule_out = work / rule
    c = train(rule_out, "--iters", "2", "--rank-scaling", rule, "--sensitivity-from", convert)
    ranks = c["ranks"]
    print(f"{rule}: ranks {sorted(set(ranks.values()))}, {c['n_params']} parameters (uniform {uniform_params})")
    f.check(len(set(ranks.values())) > 1, f"{rule}: every rank is the same: {ranks}")
    f.check(uniform_params - max(i + o for o, i in shapes.values()) < c["n_params"] <= uniform_params,
            f"{rule}: {c['n_params']} parameters for uniform's {uniform_params}")
    check_peft(rule, rule_out, c)
    if rule == "by_bits":
        bits = c["rank_rule"]["signals"]
        for a in ranks:
            for b in ranks:
                if bits[a] > bits[b]:
                    f.check(ranks[a] >= ranks[b], f"by_bits: {a} ({chosen.get(a)}, {bits[a]} bits) has rank {ranks[a]}, "
                            f"{b} ({chosen.get(b)}, {bits[b]} bits) {ranks[b]}")

# --- kill -9 and resume -----------------------------------------------------------------------


def saved_step(state: Path) -> int:
    """The step recorded in a training state (safetensors metadata), or -1."""
    try:
        raw = state.read_bytes()
        header = json.loads(raw[8:8 + struct.unpack("<Q", raw[:8])[0]])
        return json.loads(header["__metadata__"]["optiq_train_state"])["step"]
    except (OSError, ValueError, KeyError, struct.error):
        return -1


RESUME = ["--iters", "16", "--save-every", "3", "--eval-every", "0"]
straight = work / "straight"
train(straight, *RESUME)
killed = work / "killed"
args = [OPTIQ, "lora", "train", STORIES, *TRAIN, "-o", killed, *RESUME]
proc = subprocess.Popen([str(a) for a in args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
deadline = time.time() + 120
while saved_step(killed / "train-state.safetensors") < 3 and proc.poll() is None and time.time() < deadline:
    time.sleep(0.02)
at = saved_step(killed / "train-state.safetensors")
proc.send_signal(signal.SIGKILL)
proc.wait()
f.check(3 <= at < 16, f"the run was not killed between saved states (state at step {at})")
log = optiq_ok("lora", "train", STORIES, *TRAIN, "-o", killed, *RESUME)
f.check("resuming from step" in log, f"the second run did not resume: {log[-500:]}")
same = (killed / "adapter_model.safetensors").read_bytes() == (straight / "adapter_model.safetensors").read_bytes()
print(f"killed at a state of step {at}, resumed: adapter {'identical to' if same else 'DIFFERS from'} the uninterrupted run's")
f.check(same, "the resumed run's adapter differs from the uninterrupted run's")
f.check((killed / "adapter.gguf").read_bytes() == (straight / "adapter.gguf").read_bytes(), "adapter.gguf differs after resume")

# --- bad data ---------------------------------------------------------------------------------
bad = work / "bad.jsonl"
bad.write_text('{"text": "fine"}\n{"text": oops}\n')
r = run_optiq("lora", "train", STORIES, "--data", bad, "-o", work / "bad", "--iters", "1")
print(f"bad data: exit {r.returncode}: {r.stderr.strip()[-200:]}")
f.check(r.returncode == 2 and "bad.jsonl" in r.stderr and "line 2" in r.stderr, f"bad data line: exit {r.returncode}, {r.stderr}")
f.check(not (work / "bad" / "adapter_model.safetensors").exists(), "bad data left an adapter behind")

f.finish("oracle_lora_train")
