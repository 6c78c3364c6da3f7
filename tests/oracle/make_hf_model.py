"""Tiny random Hugging Face checkpoints for the oracle tests.

Each variant is a config.json plus weights sharded over two safetensors files with a
model.safetensors.index.json, laid out the way transformers saves the real model families, so
that optiq's HF reader meets the same names, dtypes and sharding it meets in the wild. The
weights are random; the point is to know every value exactly, not to produce a usable model.

Used as a module (make_model returns the HF tensors as float32 for building expectations) and as
a command: `python make_hf_model.py VARIANT OUT_DIR` (the node tests call it that way).
"""
from __future__ import annotations

import json
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from safetensors import safe_open


def _llama(**over):
    c = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 80,
        "max_position_embeddings": 256, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "rope_scaling": None, "tie_word_embeddings": False, "attention_bias": False,
        "hidden_act": "silu", "torch_dtype": "bfloat16",
    }
    c.update(over)
    return c


def _qwen2(**over):
    c = {
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
        "hidden_size": 64, "intermediate_size": 112, "num_hidden_layers": 3,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 96,
        "max_position_embeddings": 512, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
        "rope_scaling": None, "tie_word_embeddings": True,
        # Qwen2.5 configs carry these; llama.cpp's converter writes nothing for them.
        "sliding_window": 128, "use_sliding_window": False, "max_window_layers": 3,
        "hidden_act": "silu", "torch_dtype": "bfloat16",
    }
    c.update(over)
    return c


def _qwen3(**over):
    c = {
        "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3",
        "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2,
        "head_dim": 32,  # deliberately != hidden_size / num_attention_heads (16)
        "vocab_size": 72, "max_position_embeddings": 1024, "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0, "rope_scaling": None, "tie_word_embeddings": False,
        "attention_bias": False, "hidden_act": "silu", "torch_dtype": "bfloat16",
    }
    c.update(over)
    return c


def _gemma3_text(**over):
    n_layers = 7  # not a multiple of 6: the last block is a sliding one
    c = {
        "architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text",
        "hidden_size": 64, "intermediate_size": 160, "num_hidden_layers": n_layers,
        "num_attention_heads": 4, "num_key_value_heads": 1,
        "head_dim": 32,  # != 64 / 4
        "query_pre_attn_scalar": 32, "vocab_size": 88, "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0,
        "rope_scaling": None, "sliding_window": 16,
        "layer_types": ["full_attention" if (i + 1) % 6 == 0 else "sliding_attention"
                        for i in range(n_layers)],
        "final_logit_softcapping": None, "attn_logit_softcapping": None,
        "hidden_activation": "gelu_pytorch_tanh", "tie_word_embeddings": True,
        "torch_dtype": "bfloat16",
    }
    c.update(over)
    return c


def _gemma3_multimodal():
    # Gemma3ForConditionalGeneration as gemma-3-4b ships it: the text settings live under
    # text_config and leave most fields to transformers' defaults (8 heads, 4 KV heads,
    # head_dim 256, rope_theta 1e6, ...), and there is a linear rope scaling.
    return {
        "architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3",
        "text_config": {
            "model_type": "gemma3_text", "hidden_size": 64, "intermediate_size": 96,
            "num_hidden_layers": 2, "vocab_size": 64, "sliding_window": 32,
            "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
        },
        "vision_config": {"model_type": "siglip_vision_model", "hidden_size": 32},
        "mm_tokens_per_image": 4, "torch_dtype": "bfloat16",
    }


# variant -> config. Names follow what each variant exercises.
CONFIGS = {
    "llama": _llama(),
    "llama3_scaled": _llama(
        hidden_size=64, num_attention_heads=2, num_key_value_heads=1,  # head_dim 32
        attention_bias=True,  # q/k biases get the rope row permutation too
        rope_theta=500000.0, max_position_embeddings=4096,
        rope_scaling={"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 1024, "rope_type": "llama3"}),
    "llama_tied": _llama(
        hidden_size=48, num_attention_heads=4, num_key_value_heads=4,
        head_dim=16,  # explicit and != 48 / 4
        tie_word_embeddings=True),
    "qwen2": _qwen2(),
    "qwen3": _qwen3(),
    "qwen3_f32": _qwen3(torch_dtype="float32"),
    "gemma3": _gemma3_text(),
    "gemma3_mm": _gemma3_multimodal(),
}
# Variants whose weights are stored as F32 (so f16/bf16 outputs really round); the rest BF16.
F32_VARIANTS = {"qwen3_f32"}


def text_params(config: dict) -> dict:
    """The language model's settings, flattened the way llama.cpp's converter does."""
    return {**config, **config.get("text_config", {})}


def arch_of(config: dict) -> str:
    return {"LlamaForCausalLM": "llama", "Qwen2ForCausalLM": "qwen2", "Qwen3ForCausalLM": "qwen3",
            "Gemma3ForCausalLM": "gemma3",
            "Gemma3ForConditionalGeneration": "gemma3"}[config["architectures"][0]]


def tensor_shapes(config: dict) -> dict[str, tuple[int, ...]]:
    """HF tensor name -> row-major shape, for the model the config describes."""
    p = text_params(config)
    arch = arch_of(config)
    gemma = arch == "gemma3"
    hidden, ff, vocab = p["hidden_size"], p["intermediate_size"], p["vocab_size"]
    heads = p.get("num_attention_heads", 8 if gemma else None)
    kv = p.get("num_key_value_heads", 4 if gemma else heads)
    hd = p.get("head_dim", 256 if gemma else hidden // heads)
    prefix = "model.language_model." if "text_config" in config else "model."
    bias = p.get("attention_bias", False) or arch == "qwen2"
    s: dict[str, tuple[int, ...]] = {prefix + "embed_tokens.weight": (vocab, hidden)}
    for i in range(p["num_hidden_layers"]):
        b = f"{prefix}layers.{i}."
        s[b + "input_layernorm.weight"] = (hidden,)
        s[b + "self_attn.q_proj.weight"] = (heads * hd, hidden)
        s[b + "self_attn.k_proj.weight"] = (kv * hd, hidden)
        s[b + "self_attn.v_proj.weight"] = (kv * hd, hidden)
        s[b + "self_attn.o_proj.weight"] = (hidden, heads * hd)
        if bias:
            s[b + "self_attn.q_proj.bias"] = (heads * hd,)
            s[b + "self_attn.k_proj.bias"] = (kv * hd,)
            s[b + "self_attn.v_proj.bias"] = (kv * hd,)
        if arch in ("qwen3", "gemma3"):
            s[b + "self_attn.q_norm.weight"] = (hd,)
            s[b + "self_attn.k_norm.weight"] = (hd,)
        s[b + "post_attention_layernorm.weight"] = (hidden,)
        if gemma:
            s[b + "pre_feedforward_layernorm.weight"] = (hidden,)
            s[b + "post_feedforward_layernorm.weight"] = (hidden,)
        s[b + "mlp.gate_proj.weight"] = (ff, hidden)
        s[b + "mlp.up_proj.weight"] = (ff, hidden)
        s[b + "mlp.down_proj.weight"] = (hidden, ff)
    s[prefix + "norm.weight"] = (hidden,)
    if not p.get("tie_word_embeddings", gemma):
        s["lm_head.weight"] = (vocab, hidden)
    return s


# Extra tensors a real checkpoint of the family carries that the converter must drop.
def ignored_tensors(variant: str) -> dict[str, tuple[str, tuple[int, ...]]]:
    if variant == "llama":  # older Llama checkpoints saved the rotary buffer
        return {"model.layers.0.self_attn.rotary_emb.inv_freq": ("F32", (8,))}
    if variant == "gemma3_mm":  # the vision half of Gemma3ForConditionalGeneration
        return {
            "model.vision_tower.vision_model.embeddings.patch_embedding.weight": ("BF16", (32, 3, 2, 2)),
            "model.vision_tower.vision_model.post_layernorm.weight": ("BF16", (32,)),
            "model.multi_modal_projector.mm_input_projection_weight": ("BF16", (32, 64)),
        }
    return {}


# Bit patterns that stress the float conversions: signed zeros, infinities, values that
# overflow f16, land in or below f16's subnormal range, and (for f32 sources) sit exactly on a
# rounding tie of f16 or bf16, where round-to-nearest-even decides.
BF16_EDGES = [0x0000, 0x8000, 0x7F80, 0xFF80, 0x4780, 0xC780, 0x477F, 0x3380, 0x3300, 0x3340,
              0x0001, 0x8001, 0x3F81]
F32_EDGES = [0x00000000, 0x80000000, 0x7F800000, 0x477FF000, 0x477FEFFF, 0x477FE000,
             0x3F801000, 0x3F803000, 0x3F808000, 0x3F818000, 0xBF818000, 0x33800000,
             0x33000000, 0x33000001, 0x00000001, 0x387FC000, 0x38800000]


def _random_bits(rng: np.random.Generator, shape, dtype: str, name: str,
                 weight_scale: float = 1.0) -> np.ndarray:
    scale = 0.2 if name.endswith("norm.weight") else 0.05 * weight_scale
    f = (rng.standard_normal(int(np.prod(shape))) * scale).astype(np.float32)
    if dtype == "BF16":
        bits = (f.view(np.uint32) >> 16).astype(np.uint16)
        edges = np.array(BF16_EDGES, dtype=np.uint16)
    else:
        bits = f.view(np.uint32).copy()
        edges = np.array(F32_EDGES, dtype=np.uint32)
    if name.endswith("layers.0.mlp.down_proj.weight"):
        bits[: len(edges)] = edges
    return bits.reshape(shape)


def to_f32(bits: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "BF16":
        return (bits.astype(np.uint32) << 16).view(np.float32)
    if dtype == "F32":
        return bits.view(np.float32)
    raise ValueError(dtype)


def write_safetensors(path: Path, tensors: dict[str, tuple[str, np.ndarray]]) -> None:
    """Writes {name: (dtype, raw array)} as safetensors: u64 header size, JSON, data."""
    header: dict = {"__metadata__": {"format": "pt"}}
    blobs, offset = [], 0
    for name, (dtype, arr) in tensors.items():
        raw = np.ascontiguousarray(arr).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # transformers pads the header to 8 bytes
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


@dataclass
class HfModel:
    dir: Path
    config: dict
    dtypes: dict[str, str] = field(default_factory=dict)       # HF name -> safetensors dtype
    values: dict[str, np.ndarray] = field(default_factory=dict)  # HF name -> float32 values
    shards: dict[str, str] = field(default_factory=dict)       # HF name -> shard file


def write_sharded(out_dir: Path, tensors: dict[str, tuple[str, np.ndarray]]) -> dict[str, str]:
    """Two shards, alternating tensors so that every block straddles both files."""
    names = list(tensors)
    files = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    where = {n: files[i % 2] for i, n in enumerate(names)}
    for f in files:
        part = {n: tensors[n] for n in names if where[n] == f}
        write_safetensors(out_dir / f, part)
        # The reference parser (the safetensors package) must accept what was written by hand,
        # so a lenient optiq cannot hide a malformed test file.
        with safe_open(out_dir / f, framework="numpy") as st:
            assert sorted(st.keys()) == sorted(part), f"{f}: safetensors reads other tensors"
    total = sum(a.nbytes for _, a in tensors.values())
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(where.items()))}
    (out_dir / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    return where


def make_model(variant: str, out_dir: Path | str, seed: int = 1234,
               config: dict | None = None,
               extra: dict[str, tuple[str, np.ndarray]] | None = None,
               weight_scale: float = 1.0, edges: bool = True) -> HfModel:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # The tensors always follow the variant; `config` replaces only the config.json written
    # (the error tests use that to describe the same weights with a bad config).
    layout = CONFIGS[variant]
    config = dict(layout if config is None else config)
    dtype = "F32" if variant in F32_VARIANTS else "BF16"
    rng = np.random.default_rng(seed)
    m = HfModel(out_dir, config)
    tensors: dict[str, tuple[str, np.ndarray]] = {}
    for name, shape in tensor_shapes(layout).items():
        bits = _random_bits(rng, shape, dtype, name, weight_scale)
        if not edges and name.endswith("layers.0.mlp.down_proj.weight"):
            bits = _random_bits(rng, shape, dtype, "plain", weight_scale)
        tensors[name] = (dtype, bits)
        m.values[name] = to_f32(bits, dtype)
    for name, (dt, shape) in ignored_tensors(variant).items():
        tensors[name] = (dt, _random_bits(rng, shape, dt, name))
    for name, (dt, arr) in (extra or {}).items():
        tensors[name] = (dt, arr)
    for name, (dt, _) in tensors.items():
        m.dtypes[name] = dt
    (out_dir / "config.json").write_text(json.dumps(config, indent=2))
    m.shards = write_sharded(out_dir, tensors)
    return m


def with_tokenizer(variant: str, name: str, vocab_size: int) -> str:
    """Registers VARIANT-NAME: the variant with vocab_size rows (to carry a real tokenizer)."""
    key = f"{variant}-{name}"
    CONFIGS[key] = {**CONFIGS[variant], "vocab_size": vocab_size}
    if variant in F32_VARIANTS:
        F32_VARIANTS.add(key)
    return key


if __name__ == "__main__":
    # make_hf_model.py VARIANT OUT_DIR [VOCAB_SIZE [WEIGHT_SCALE]]: VOCAB_SIZE overrides the
    # variant's (for folders that carry a real tokenizer); WEIGHT_SCALE multiplies the spread of
    # the matrices and drops the edge-value block (for models that must run, not just convert).
    if len(sys.argv) not in (3, 4, 5) or sys.argv[1] not in CONFIGS:
        sys.exit(f"usage: make_hf_model.py {{{','.join(CONFIGS)}}} OUT_DIR [VOCAB_SIZE [WEIGHT_SCALE]]")
    variant = sys.argv[1]
    if len(sys.argv) >= 4:
        variant = with_tokenizer(variant, "tok", int(sys.argv[3]))
    if len(sys.argv) == 5:
        make_model(variant, sys.argv[2], weight_scale=float(sys.argv[4]), edges=False)
    else:
        make_model(variant, sys.argv[2])
