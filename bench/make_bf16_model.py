#!/usr/bin/env python3
"""Writes a random Llama-architecture Hugging Face folder for the conversion benchmark:
config.json, about 0.5 GB of bf16 weights in two safetensors shards, and
model.safetensors.index.json. Only numpy is needed; the safetensors files are written by hand.
    make_bf16_model.py OUT_DIR
The index is written last, so a folder that has one is complete.
"""
import json
import pathlib
import struct
import sys

import numpy as np

CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 1024,
    "intermediate_size": 2816,
    "num_hidden_layers": 16,
    "num_attention_heads": 16,
    "num_key_value_heads": 4,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "max_position_embeddings": 2048,
    "vocab_size": 32000,
    "torch_dtype": "bfloat16",
}


def tensor_shapes(c):
    """(name, shape) in checkpoint order; shapes are row-major [out, in] as in PyTorch."""
    h, f, v = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    kv = c["num_key_value_heads"] * (h // c["num_attention_heads"])
    shapes = [("model.embed_tokens.weight", (v, h))]
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        shapes += [
            (p + "self_attn.q_proj.weight", (h, h)),
            (p + "self_attn.k_proj.weight", (kv, h)),
            (p + "self_attn.v_proj.weight", (kv, h)),
            (p + "self_attn.o_proj.weight", (h, h)),
            (p + "mlp.gate_proj.weight", (f, h)),
            (p + "mlp.up_proj.weight", (f, h)),
            (p + "mlp.down_proj.weight", (h, f)),
            (p + "input_layernorm.weight", (h,)),
            (p + "post_attention_layernorm.weight", (h,)),
        ]
    return shapes + [("model.norm.weight", (h,)), ("lm_head.weight", (v, h))]


def random_bf16(rng, shape):
    """Normal values scaled like trained weights, rounded to bf16 (nearest, ties to even)."""
    x = (rng.standard_normal(shape, dtype=np.float32) * 0.02).view(np.uint32)
    return ((x + 0x7FFF + ((x >> 16) & 1)) >> 16).astype("<u2")


def write_shard(path, tensors, rng):
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, shape in tensors:
        size = 2 * int(np.prod(shape))
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data buffer starts 8-byte aligned, as safetensors writes it
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(text)))
        out.write(text)
        for _, shape in tensors:
            out.write(random_bf16(rng, shape).tobytes())
    return offset


def main(out_dir):
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(CONFIG, indent=2) + "\n")
    shapes = tensor_shapes(CONFIG)
    sizes = [2 * int(np.prod(s)) for _, s in shapes]
    # Split where the running size first passes half, so the two shards are about equal.
    half, running, split = sum(sizes) / 2, 0, len(shapes)
    for i, size in enumerate(sizes):
        running += size
        if running >= half:
            split = i + 1
            break
    rng = np.random.default_rng(0)
    files = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    total, weight_map = 0, {}
    for name, part in zip(files, (shapes[:split], shapes[split:])):
        total += write_shard(out / name, part, rng)
        weight_map.update({t: name for t, _ in part})
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    print(f"wrote {out}: {len(shapes)} tensors, {total / 1e6:.1f} MB of bf16 weights")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: make_bf16_model.py OUT_DIR")
    main(sys.argv[1])
