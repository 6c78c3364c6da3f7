"""Generated PEFT LoRA adapters for the oracle tests, with numpy's s·B·A of every module."""
from __future__ import annotations

import json
import re
from pathlib import Path

import gguf
import numpy as np
from safetensors.numpy import save_file

from oracle_util import STORIES, run_optiq

TEXT = Path("tests/fixtures/stories.txt")  # the perplexity text of the LoRA oracles
N_CTX = 128
LLAMA_FLAGS = ["-c", str(N_CTX), "-t", "1", "-tb", "1", "-ctk", "f32", "-ctv", "f32", "-fa", "off"]


def optiq_ok(*args) -> str:
    """optiq's stdout and stderr; AssertionError when it fails."""
    r = run_optiq(*args)
    if r.returncode != 0:
        raise AssertionError(f"optiq {' '.join(map(str, args))} failed ({r.returncode}): {r.stderr[-2000:]}")
    return r.stdout + "\n" + r.stderr


def final_ppl(out: str) -> float:
    """The "Final estimate: PPL = X" of optiq perplexity or llama-perplexity."""
    m = re.search(r"Final estimate: PPL = (\d+\.\d+)", out)
    if not m:
        raise AssertionError(f"no final estimate in:\n{out[-2000:]}")
    return float(m.group(1))


def close(a: float, b: float, rel: float = 1e-3) -> bool:
    return abs(a - b) <= rel * max(abs(a), abs(b))

MODULES = {  # HF module suffix -> GGUF tensor suffix
    "self_attn.q_proj": "attn_q.weight", "self_attn.k_proj": "attn_k.weight", "self_attn.v_proj": "attn_v.weight",
    "self_attn.o_proj": "attn_output.weight", "mlp.gate_proj": "ffn_gate.weight", "mlp.up_proj": "ffn_up.weight",
    "mlp.down_proj": "ffn_down.weight",
}

class Base:
    """A llama GGUF's block count, head counts and matrix shapes ([out, in])."""

    def __init__(self, path: Path) -> None:
        r = gguf.GGUFReader(path)
        def field(name: str) -> int:
            fl = r.fields[name]
            return int(fl.parts[fl.data[0]][0])
        self.path = path
        self.n_layer, self.n_head = field("llama.block_count"), field("llama.attention.head_count")
        self.n_head_kv = field("llama.attention.head_count_kv")
        self.shapes = {t.name: (int(t.shape[1]), int(t.shape[0])) for t in r.tensors if len(t.shape) == 2}


STORIES_BASE = Base(STORIES)


def to_llama_rows(b: np.ndarray, heads: int) -> np.ndarray:
    """HF rotary row order -> llama.cpp's: within each head, the two halves interleave."""
    out, r = b.shape
    d = out // heads
    return b.reshape(heads, 2, d // 2, r).transpose(0, 2, 1, 3).reshape(out, r)


def make_peft(folder: Path, rank: int, alpha: float, seed: int, layers=None, modules=MODULES, dtype=np.float32,
              extra_config: dict | None = None, ranks: dict | None = None, base: Base = STORIES_BASE,
              spread: float = 0.05) -> tuple[Path, dict]:
    """A PEFT adapter in `folder` (created) with random factors N(0, spread²) on `modules` of
    `layers` (default: every block); returns it and {gguf tensor: s·B·A in llama.cpp's row
    order}, computed in numpy as PEFT defines the scale."""
    layers = range(base.n_layer) if layers is None else layers
    rng = np.random.default_rng(seed)
    config = {"peft_type": "LORA", "r": rank, "lora_alpha": alpha, "target_modules": sorted({m.split(".")[1] for m in modules}),
              "use_rslora": False, "fan_in_fan_out": False, "rank_pattern": {}, "alpha_pattern": {}, **(extra_config or {})}
    tensors, deltas = {}, {}
    for il in layers:
        for hf, gg in modules.items():
            target = f"blk.{il}.{gg}"
            out_dim, in_dim = base.shapes[target]
            module = f"model.layers.{il}.{hf}"
            r = (ranks or {}).get(module, rank)
            a = rng.normal(0, spread, (r, in_dim)).astype(np.float32)
            b = rng.normal(0, spread, (out_dim, r)).astype(np.float32)
            tensors[f"base_model.model.{module}.lora_A.weight"] = a.astype(dtype)
            tensors[f"base_model.model.{module}.lora_B.weight"] = b.astype(dtype)
            a, b = a.astype(dtype).astype(np.float32), b.astype(dtype).astype(np.float32)
            r_used, alpha_used = r, alpha
            for key, v in config["rank_pattern"].items():
                if re.fullmatch(rf"(.*\.)?({key})", module):
                    r_used = v
                    break
            for key, v in config["alpha_pattern"].items():
                if re.fullmatch(rf"(.*\.)?({key})", module):
                    alpha_used = v
                    break
            s = alpha_used / np.sqrt(r_used) if config["use_rslora"] else alpha_used / r_used
            if gg == "attn_q.weight":
                b = to_llama_rows(b, base.n_head)
            elif gg == "attn_k.weight":
                b = to_llama_rows(b, base.n_head_kv)
            deltas[target] = s * (b.astype(np.float64) @ a.astype(np.float64))
    d = folder
    d.mkdir()
    (d / "adapter_config.json").write_text(json.dumps(config))
    save_file(tensors, str(d / "adapter_model.safetensors"))
    return d, deltas


