"""`optiq quantize` against llama.cpp's own quantizer (llama_model_quantize from the prebuilt
libllama, see llama_quantize_lib.py): for every tensor, the type chosen and the bytes written
must be identical, for the llama.cpp mixes on
- stories260K (rows of 64 and 172 columns: K-quants fall back, ffn_down ends in F16),
- random-weight Hugging Face models of each architecture (llama with 16 layers; qwen2, qwen3,
  gemma3 with 8; grouped-query attention; widths that are multiples of 256) converted to f16
  GGUF by `optiq convert` (and one to f32),
- user overrides (--pure, --tensor-type, --output-tensor-type, --token-embedding-type),
- an importance matrix (a GGUF imatrix written here with gguf-py), which changes both rules and
  quantized bytes,
- a Mixtral-style model (8 experts, 3-D expert tensors) with and without per-expert importance,
- a Hugging Face folder quantized directly, against llama.cpp on optiq's bf16 convert."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import gguf
import numpy as np
from gguf import GGMLQuantizationType as T

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_hf_model as hf  # noqa: E402
from llama_quantize_lib import LlamaQuantizer  # noqa: E402
from oracle_util import STORIES, Failures, convert, run_optiq, work_dir  # noqa: E402

MAIN_MIXES = ["Q4_K_M", "Q3_K_M", "Q5_K_M", "Q2_K", "Q4_0", "Q6_K", "Q8_0", "IQ4_XS"]
MORE_MIXES = ["Q3_K_S", "Q3_K_L", "Q4_K_S", "Q5_K_S", "Q4_1", "Q5_0", "Q5_1", "IQ4_NL", "F16", "BF16"]

# Quantization-sized variants of the generated architectures: every matrix width is a multiple
# of 256 so that K-quants apply without fallback, and there are enough layers for the
# "more bits" layer pattern (and, with 16, the n/16 rules) to pick different layers.
VARIANTS = {
    "llama_q": hf._llama(hidden_size=256, intermediate_size=768, num_hidden_layers=16,
                         num_attention_heads=4, num_key_value_heads=1, vocab_size=320),
    "qwen2_q": hf._qwen2(hidden_size=256, intermediate_size=512, num_hidden_layers=8,
                         num_attention_heads=4, num_key_value_heads=2, vocab_size=256, max_window_layers=8),
    "qwen3_q": hf._qwen3(hidden_size=256, intermediate_size=512, num_hidden_layers=8,
                         num_attention_heads=4, num_key_value_heads=1, head_dim=64, vocab_size=288),
    "gemma3_q": hf._gemma3_text(hidden_size=256, intermediate_size=512, num_hidden_layers=8,
                                num_attention_heads=4, num_key_value_heads=1, head_dim=64,
                                query_pre_attn_scalar=64, vocab_size=256,
                                layer_types=["full_attention" if (i + 1) % 6 == 0 else "sliding_attention"
                                             for i in range(8)]),
}


def optiq_quantize(src: Path, out: Path, mix: str, *extra: str) -> str:
    r = run_optiq("quantize", src, "-o", out, "--type", mix, "-t", "2", *extra)
    if r.returncode != 0:
        raise AssertionError(f"optiq quantize {src} {mix} {' '.join(extra)} failed ({r.returncode}): {r.stderr}")
    return r.stdout


class Tally:
    def __init__(self) -> None:
        self.files = self.tensors = self.same_type = self.same_bytes = self.same_file = 0


def compare(f: Failures, tally: Tally, ours: Path, ref: Path, what: str, whole_file: bool = True) -> None:
    """Tensor by tensor; with whole_file, also the files byte for byte (metadata order and
    values, tensor order and padding). Calls through the library with an imatrix skip that:
    the quantize.imatrix.* keys are added by the llama-quantize program, not the library."""
    a, b = gguf.GGUFReader(ours), gguf.GGUFReader(ref)
    ta = {t.name: t for t in a.tensors}
    tb = {t.name: t for t in b.tensors}
    tally.files += 1
    f.check(list(ta) == list(tb), f"{what}: tensor names or order differ: optiq {list(ta)[:4]}..., llama.cpp {list(tb)[:4]}...")
    ft_a = a.fields["general.file_type"].contents()
    ft_b = b.fields["general.file_type"].contents()
    f.check(ft_a == ft_b, f"{what}: general.file_type optiq {ft_a}, llama.cpp {ft_b}")
    for name, t in tb.items():
        tally.tensors += 1
        o = ta.get(name)
        if not f.check(o is not None, f"{what}: {name} missing from optiq's file"):
            continue
        if not f.check(o.tensor_type == t.tensor_type,
                       f"{what}: {name}: optiq chose {o.tensor_type.name}, llama.cpp {t.tensor_type.name}"):
            continue
        tally.same_type += 1
        same = np.asarray(o.data).tobytes() == np.asarray(t.data).tobytes()
        tally.same_bytes += same
        f.check(same, f"{what}: {name} ({t.tensor_type.name}): bytes differ")
    if whole_file:
        same_file = ours.read_bytes() == ref.read_bytes()
        tally.same_file += same_file
        f.check(same_file, f"{what}: the files differ (metadata or layout)")


def fallback_counts(optiq_stdout: str, llama_log: str) -> tuple[int, int]:
    m_o = re.search(r"warning: (\d+) of \d+ tensor\(s\) required fallback", optiq_stdout)
    m_l = re.search(r"WARNING: (\d+) of \d+ tensor\(s\) required fallback", llama_log)
    return (int(m_o.group(1)) if m_o else 0, int(m_l.group(1)) if m_l else 0)


def write_imatrix(path: Path, model: Path, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A GGUF importance matrix for every blk.* matrix of `model`, with random positive sums
    and counts; returns what llama-quantize derives from it (sums / count per column)."""
    w = gguf.GGUFWriter(str(path), arch="imatrix")
    w.add_string("general.type", "imatrix")
    w.add_array("imatrix.datasets", ["random"])
    w.add_uint32("imatrix.chunk_count", 3)
    w.add_uint32("imatrix.chunk_size", 64)
    derived = {}
    for t in gguf.GGUFReader(model).tensors:
        if not t.name.startswith("blk.") or len(t.shape) < 2:
            continue
        cols = int(t.shape[0])
        sums = (rng.gamma(0.7, 2.0, cols) * 192).astype(np.float32)
        count = np.array([[192.0]], dtype=np.float32)
        w.add_tensor(t.name + ".in_sum2", sums.reshape(1, cols))
        w.add_tensor(t.name + ".counts", count)
        derived[t.name] = sums / np.float32(192.0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return derived


def write_moe_model(path: Path, rng: np.random.Generator) -> None:
    """A Mixtral-style GGUF (architecture llama, 8 experts, 3-D expert tensors) written with
    gguf-py: the MoE rules (Q8_0 attention, layer numbers from names) and per-expert rows."""
    n_embd, n_ff, n_layer, n_expert, vocab = 256, 512, 4, 8, 256
    w = gguf.GGUFWriter(str(path), arch="llama")
    w.add_block_count(n_layer)
    w.add_context_length(256)
    w.add_embedding_length(n_embd)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(4)
    w.add_head_count_kv(1)
    w.add_rope_dimension_count(64)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_expert_count(n_expert)
    w.add_expert_used_count(2)
    w.add_file_type(1)

    def mat(*shape):
        return (rng.standard_normal(shape) * 0.05).astype(np.float16)

    w.add_tensor("token_embd.weight", mat(vocab, n_embd))
    w.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    w.add_tensor("output.weight", mat(vocab, n_embd))
    for i in range(n_layer):
        b = f"blk.{i}."
        w.add_tensor(b + "attn_norm.weight", np.ones(n_embd, dtype=np.float32))
        w.add_tensor(b + "attn_q.weight", mat(n_embd, n_embd))
        w.add_tensor(b + "attn_k.weight", mat(64, n_embd))
        w.add_tensor(b + "attn_v.weight", mat(64, n_embd))
        w.add_tensor(b + "attn_output.weight", mat(n_embd, n_embd))
        w.add_tensor(b + "ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
        w.add_tensor(b + "ffn_gate_inp.weight", (rng.standard_normal((n_expert, n_embd)) * 0.05).astype(np.float32))
        w.add_tensor(b + "ffn_gate_exps.weight", mat(n_expert, n_ff, n_embd))
        w.add_tensor(b + "ffn_up_exps.weight", mat(n_expert, n_ff, n_embd))
        w.add_tensor(b + "ffn_down_exps.weight", mat(n_expert, n_embd, n_ff))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_moe_imatrix(path: Path, model: Path, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per-expert statistics for the MoE model (expert 3 never routed to: count 0), and what
    llama-quantize derives from them."""
    w = gguf.GGUFWriter(str(path), arch="imatrix")
    w.add_string("general.type", "imatrix")
    w.add_array("imatrix.datasets", ["random"])
    w.add_uint32("imatrix.chunk_count", 2)
    w.add_uint32("imatrix.chunk_size", 64)
    derived = {}
    for t in gguf.GGUFReader(model).tensors:
        if not t.name.startswith("blk.") or len(t.shape) < 2 or "gate_inp" in t.name:
            continue
        cols, n_mat = int(t.shape[0]), (int(t.shape[2]) if len(t.shape) > 2 else 1)
        counts = rng.integers(20, 128, n_mat).astype(np.float32)
        if n_mat > 1:
            counts[3] = 0
        sums = (rng.gamma(0.7, 2.0, (n_mat, cols)) * counts[:, None]).astype(np.float32)
        w.add_tensor(t.name + ".in_sum2", sums)
        w.add_tensor(t.name + ".counts", counts.reshape(n_mat, 1))
        imp = np.where(counts[:, None] > 0, sums / np.where(counts > 0, counts, 1)[:, None], np.float32(1))
        derived[t.name] = imp.astype(np.float32).reshape(-1)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return derived


def main() -> None:
    d = work_dir("quantize_recipes")
    llama = LlamaQuantizer()
    f = Failures()
    tally = Tally()
    rng = np.random.default_rng(7)

    def both(src: Path, mix: str, tag: str, optiq_args: tuple = (), **llama_args) -> tuple[str, str]:
        ours, ref = d / f"{tag}.optiq.gguf", d / f"{tag}.llama.gguf"
        out = optiq_quantize(src, ours, mix, *optiq_args)
        llama.quantize(src, ref, mix, **llama_args)
        compare(f, tally, ours, ref, tag, whole_file="imatrix" not in llama_args)
        return out, "".join(llama.log)

    # stories260K: every K-quant falls back (64 columns), ffn_down (172 columns) ends in F16.
    for mix in MAIN_MIXES:
        out, log = both(STORIES, mix, f"stories-{mix}")
        n_o, n_l = fallback_counts(out, log)
        f.check(n_o == n_l, f"stories {mix}: optiq counts {n_o} fallbacks, llama.cpp {n_l}")

    # make_hf_model plants edge values in layer 0's ffn_down, infinities and values that
    # overflow f16 among them. Both quantizers must refuse those rows...
    hf.CONFIGS["llama_inf"] = VARIANTS["llama_q"]
    hf.make_model("llama_inf", d / "llama_inf")
    inf_model = convert(d / "llama_inf", d / "llama_inf-f16.gguf", "f16")
    r = run_optiq("quantize", inf_model, "-o", d / "inf.gguf", "--type", "Q4_K_M")
    f.check(r.returncode == 2 and "not finite" in r.stderr and not (d / "inf.gguf").exists(),
            f"optiq quantize of a model with Inf weights: exit {r.returncode}, {r.stderr.strip()}")
    try:
        llama.quantize(inf_model, d / "inf.llama.gguf", "Q4_K_M")
        f.check(False, "llama.cpp accepted a model with Inf weights")
    except AssertionError:
        f.check(True, "llama.cpp refuses Inf weights")
    # ... so the models compared below keep only the finite ones.
    hf.BF16_EDGES = [e for e in hf.BF16_EDGES if e not in (0x7F80, 0xFF80, 0x4780, 0xC780)]
    models = {}
    for variant, config in VARIANTS.items():
        hf.CONFIGS[variant] = config
        folder = d / variant
        hf.make_model(variant, folder)
        models[variant] = convert(folder, d / f"{variant}-f16.gguf", "f16")
    for variant, model in models.items():
        for mix in MAIN_MIXES:
            both(model, mix, f"{variant}-{mix}")

    llama_f16 = models["llama_q"]
    for mix in MORE_MIXES:
        both(llama_f16, mix, f"llama_q-{mix}")
    both(convert(d / "llama_q", d / "llama_q-f32.gguf", "f32"), "Q4_K_M", "llama_q-f32-Q4_K_M")

    # User overrides.
    both(llama_f16, "Q4_K_M", "llama_q-pure", ("--pure",), pure=True)
    both(llama_f16, "Q4_K_M", "llama_q-tensor-type",
         ("--tensor-type", "attn_q=q8_0", "--tensor-type", "BLK\\.[0-3]\\.ffn_down=q5_k"),
         tensor_types=[("attn_q", int(T.Q8_0)), ("blk\\.[0-3]\\.ffn_down", int(T.Q5_K))])
    both(llama_f16, "Q3_K_M", "llama_q-output-embd",
         ("--output-tensor-type", "q4_k", "--token-embedding-type", "q8_0"),
         output_tensor_type=int(T.Q4_K), token_embedding_type=int(T.Q8_0))
    both(models["qwen2_q"], "Q4_K_M", "qwen2_q-tied-output-type", ("--output-tensor-type", "q5_0"),
         output_tensor_type=int(T.Q5_0))

    # An importance matrix: the weighted searches, and the rules that depend on having one.
    for variant in ("llama_q", "qwen3_q"):
        im_path = d / f"{variant}.imatrix.gguf"
        derived = write_imatrix(im_path, models[variant], rng)
        for mix in ("Q4_K_M", "IQ4_XS", "Q4_0", "Q5_0", "Q2_K_S", "IQ4_NL", "Q3_K_S"):
            both(models[variant], mix, f"{variant}-imatrix-{mix}", ("--imatrix", im_path), imatrix=derived)

    # Mixture of experts: 3-D expert tensors, per-expert importance.
    moe = d / "moe-f16.gguf"
    write_moe_model(moe, rng)
    moe_imatrix = d / "moe.imatrix.gguf"
    moe_derived = write_moe_imatrix(moe_imatrix, moe, rng)
    for mix in ("Q4_K_M", "Q3_K_M", "Q2_K", "IQ4_XS", "Q4_0"):
        both(moe, mix, f"moe-{mix}")
        both(moe, mix, f"moe-imatrix-{mix}", ("--imatrix", moe_imatrix), imatrix=moe_derived)

    # A Hugging Face folder quantized directly equals llama.cpp on the bf16 convert.
    bf16 = convert(d / "llama_q", d / "llama_q-bf16.gguf", "bf16")
    ours = d / "llama_q-hf.optiq.gguf"
    optiq_quantize(d / "llama_q", ours, "Q4_K_M")
    llama.quantize(bf16, d / "llama_q-hf.llama.gguf", "Q4_K_M")
    compare(f, tally, ours, d / "llama_q-hf.llama.gguf", "llama_q HF folder Q4_K_M")

    print(f"oracle_quantize_recipes: {tally.files} file pairs, {tally.tensors} tensors: "
          f"{tally.same_type} same type, {tally.same_bytes} byte-identical; {tally.same_file} whole files identical")
    f.finish("oracle_quantize_recipes")


if __name__ == "__main__":
    main()
