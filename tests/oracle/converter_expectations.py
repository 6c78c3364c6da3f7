"""What llama.cpp's convert_hf_to_gguf.py would write for the tiny HF models of
make_hf_model.py, derived from gguf-py (names, key names, types, rounding) and from the
converter's documented behaviour (conversion/base.py, llama.py, qwen.py, gemma.py in llama.cpp),
restated here for just the config fields these models use."""
from __future__ import annotations

import math

import gguf
import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import GGUFValueType as V

from make_hf_model import arch_of, text_params

OUTTYPES = {"f32": Q.F32, "f16": Q.F16, "bf16": Q.BF16}
FILE_TYPES = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
              "bf16": gguf.LlamaFileType.MOSTLY_BF16}
ARCH_ENUM = {name: arch for arch, name in gguf.MODEL_ARCH_NAMES.items()}


def gguf_tensor_name(config: dict, hf_name: str) -> str | None:
    """The GGUF name of an HF tensor per gguf-py's TensorNameMap, or None when the converter
    drops it (multimodal towers, rotary buffers)."""
    # TextModel.filter_tensors skips the vision/projector half of multimodal checkpoints;
    # prepare_tensors skips rotary_emb.inv_freq; ModelBase.filter_tensors strips "language_model.".
    if "vision_" in hf_name or "projector." in hf_name or hf_name.endswith(".rotary_emb.inv_freq"):
        return None
    p = text_params(config)
    tmap = gguf.get_tensor_name_map(ARCH_ENUM[arch_of(config)], p["num_hidden_layers"])
    name = tmap.get_name(hf_name.replace("language_model.", ""), try_suffixes=(".weight", ".bias"))
    if name is None:
        raise AssertionError(f"gguf-py has no GGUF name for {hf_name!r}: the test model is wrong")
    return name


def llama_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """The row order LlamaModel.permute gives q/k: each head's rotary pairs interleaved."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def transformed_f32(config: dict, hf_name: str, values: np.ndarray) -> np.ndarray:
    """The float32 tensor the converter hands to the writer (after its modify_tensors)."""
    p = text_params(config)
    arch = arch_of(config)
    if arch == "llama":
        heads = p["num_attention_heads"]
        kv = p.get("num_key_value_heads", heads)
        if hf_name.endswith(("q_proj.weight", "q_proj.bias")):
            return llama_permute(values, heads)
        if hf_name.endswith(("k_proj.weight", "k_proj.bias")):
            return llama_permute(values, kv)
    if arch == "gemma3" and hf_name.endswith("norm.weight"):
        return values + np.float32(1.0)  # Gemma3RMSNorm scales by (1 + weight)
    return values


def out_qtype(gguf_name: str, n_dims: int, outtype: str) -> Q:
    # prepare_tensors: 1-D tensors and norms stay F32, as does anything not named *.weight.
    if n_dims <= 1 or gguf_name.endswith("_norm.weight") or not gguf_name.endswith(".weight"):
        return Q.F32
    return OUTTYPES[outtype]


def encode(values: np.ndarray, qtype: Q) -> bytes:
    """The bytes gguf-py's quantize writes (astype for F16, round-to-nearest-even for BF16)."""
    with np.errstate(over="ignore"):  # values beyond f16's range become inf, on purpose
        return gguf.quants.quantize(np.ascontiguousarray(values, dtype=np.float32), qtype).tobytes()


def _f32(x: float) -> float:
    return float(np.float32(x))


def arch_metadata(config: dict) -> dict[str, tuple[V, object]]:
    """Every `<arch>.*` key the converter writes for this config: key -> (type, value)."""
    p = text_params(config)
    arch = arch_of(config)
    gemma = arch == "gemma3"
    K = gguf.Keys
    e: dict[str, tuple[V, object]] = {}

    def put(key: str, vtype: V, value) -> None:
        e[key.format(arch=arch)] = (vtype, _f32(value) if vtype == V.FLOAT32 else value)

    # TextModel.set_gguf_parameters
    put(K.LLM.BLOCK_COUNT, V.UINT32, p["num_hidden_layers"])
    if "max_position_embeddings" in p:
        put(K.LLM.CONTEXT_LENGTH, V.UINT32, p["max_position_embeddings"])
    put(K.LLM.EMBEDDING_LENGTH, V.UINT32, p["hidden_size"])
    put(K.LLM.FEED_FORWARD_LENGTH, V.UINT32, p["intermediate_size"])
    if "num_attention_heads" in p:
        put(K.Attention.HEAD_COUNT, V.UINT32, p["num_attention_heads"])
    if "num_key_value_heads" in p:
        put(K.Attention.HEAD_COUNT_KV, V.UINT32, p["num_key_value_heads"])
    rope = p.get("rope_parameters", p.get("rope_scaling")) or {}
    rope_type = rope.get("rope_type", rope.get("type"))
    if rope_type == "linear" and rope.get("factor") is not None:
        put(K.Rope.SCALING_TYPE, V.STRING, gguf.RopeScalingType.LINEAR.value)
        put(K.Rope.SCALING_FACTOR, V.FLOAT32, rope["factor"])
    if p.get("rope_theta") is not None:
        put(K.Rope.FREQ_BASE, V.FLOAT32, p["rope_theta"])
    if p.get("rope_local_base_freq") is not None:
        put(K.Rope.FREQ_BASE_SWA, V.FLOAT32, p["rope_local_base_freq"])
    if p.get("rms_norm_eps") is not None:
        put(K.Attention.LAYERNORM_RMS_EPS, V.FLOAT32, p["rms_norm_eps"])
    if p.get("head_dim") is not None:
        put(K.Attention.KEY_LENGTH, V.UINT32, p["head_dim"])
        put(K.Attention.VALUE_LENGTH, V.UINT32, p["head_dim"])

    if arch == "llama":  # LlamaModel.set_gguf_parameters
        put(K.LLM.VOCAB_SIZE, V.UINT32, p["vocab_size"])
        put(K.Rope.DIMENSION_COUNT, V.UINT32,
            p.get("head_dim") or p["hidden_size"] // p["num_attention_heads"])
    if gemma:  # Gemma3Model.set_gguf_parameters: defaults for what the config leaves out
        put(K.LLM.CONTEXT_LENGTH, V.UINT32, p.get("max_position_embeddings", 131072))
        put(K.Attention.HEAD_COUNT, V.UINT32, p.get("num_attention_heads", 8))
        put(K.Attention.LAYERNORM_RMS_EPS, V.FLOAT32, p.get("rms_norm_eps", 1e-6))
        put(K.Attention.KEY_LENGTH, V.UINT32, p.get("head_dim", 256))
        put(K.Attention.VALUE_LENGTH, V.UINT32, p.get("head_dim", 256))
        put(K.Rope.FREQ_BASE, V.FLOAT32, p.get("rope_theta", 1_000_000.0))
        if p.get("final_logit_softcapping"):
            put(K.LLM.FINAL_LOGIT_SOFTCAPPING, V.FLOAT32, p["final_logit_softcapping"])
        if p.get("sliding_window_pattern") != 1:
            put(K.Attention.SLIDING_WINDOW, V.UINT32, p["sliding_window"])
        put(K.Attention.HEAD_COUNT_KV, V.UINT32, p.get("num_key_value_heads", 4))
    return e


def general_metadata(config: dict, outtype: str) -> dict[str, tuple[V, object]]:
    K = gguf.Keys.General
    return {
        K.ARCHITECTURE: (V.STRING, arch_of(config)),
        K.TYPE: (V.STRING, gguf.GGUFType.MODEL),
        K.FILE_TYPE: (V.UINT32, int(FILE_TYPES[outtype])),
        K.QUANTIZATION_VERSION: (V.UINT32, gguf.GGML_QUANT_VERSION),
    }


def _llama3_factors(rope: dict, base: float, dim: int, pow_ulps: int) -> tuple[np.ndarray, np.ndarray]:
    f32 = np.float32
    recip = lambda x: f32(1) / x  # noqa: E731  (torch.reciprocal: a correctly rounded 1/x)
    powed = f32(base) ** (np.arange(0, dim, 2, dtype=f32) / f32(dim))
    for _ in range(abs(pow_ulps)):
        powed = np.nextafter(powed, f32(np.inf) if pow_ulps > 0 else f32(0))
    freqs = recip(powed)
    factor = rope.get("factor", 8.0)
    low = rope.get("low_freq_factor", 1.0)
    high = rope.get("high_freq_factor", 4.0)
    old_ctx = rope.get("original_max_position_embeddings", 8192)
    low_wavelen, high_wavelen = old_ctx / low, old_ctx / high
    out, smooth_band = [], []
    for freq in freqs:
        wavelen = recip(freq) * f32(2 * math.pi)
        if wavelen < high_wavelen:
            out.append(f32(1))
            smooth_band.append(False)
        elif wavelen > low_wavelen:
            out.append(f32(factor))
            smooth_band.append(False)
        else:
            smooth = (recip(wavelen) * f32(old_ctx) - f32(low)) / f32(high - low)
            out.append(recip((f32(1) - smooth) / f32(factor) + smooth))
            smooth_band.append(True)
    return np.array(out, dtype=f32), np.array(smooth_band)


def llama3_rope_factors(config: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """rope_freqs.weight as LlamaModel.generate_extra_tensors computes it, or None when the
    config has no llama3 scaling. Returns (lowest, highest, in_smooth_band): the bounds of what
    the converter can produce.

    Torch does that arithmetic on float32 tensors with python scalars (which do not widen the
    type; numpy 2's scalar promotion is the same), and it evaluates `scalar / tensor` as
    `tensor.reciprocal() * scalar` (Tensor.__rtruediv__), which rounds differently from a
    division: every step is mirrored in float32. The one step numpy cannot replay bit for bit
    is torch's vectorised float32 pow (accurate to 1 ulp, not correctly rounded), so the bounds
    cover the formula evaluated with pow at -1, 0 and +1 ulp of numpy's."""
    p = text_params(config)
    rope = p.get("rope_parameters", p.get("rope_scaling")) or {}
    if str(rope.get("rope_type", rope.get("type", ""))).lower() != "llama3":
        return None
    base = rope.get("rope_theta", p.get("rope_theta", 10000.0))
    dim = p.get("head_dim") or p["hidden_size"] // p["num_attention_heads"]
    runs = [_llama3_factors(rope, base, dim, u) for u in (-1, 0, 1)]
    values = np.stack([r[0] for r in runs])
    smooth = runs[1][1]
    if not all(np.array_equal(r[1], smooth) for r in runs):
        raise AssertionError("test config puts a frequency on a llama3 band edge; pick another")
    return values.min(axis=0), values.max(axis=0), smooth
