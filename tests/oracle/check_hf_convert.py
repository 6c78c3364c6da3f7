"""oracle_hf_convert: optiq's Hugging Face -> GGUF conversion against llama.cpp's converter.

For tiny random checkpoints of each supported family (make_hf_model.py) converted at every float
out type, gguf-py reads optiq's file and the test checks:
  - tensor names are exactly gguf-py's TensorNameMap names for the HF tensors (plus
    rope_freqs.weight under llama3 rope scaling), none missing, none extra;
  - shapes are the HF shapes reversed (ggml order); types follow the converter's rule;
  - data equals the converter's: bf16/f32 -> f32, llama q/k row permutation, gemma3 norm + 1,
    then gguf-py's own f16/bf16 encoding; compared bit for bit;
  - metadata: general.* and the exact set of `<arch>.*` keys with their types and values;
  - llama3 rope factors against the converter's formula.
Then failure cases through the CLI: exit 2, one `optiq: error:` line naming the problem, and
nothing (not even a hidden temp file) left in the output folder.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import gguf
import numpy as np
from gguf import GGMLQuantizationType as Q

sys.path.insert(0, str(Path(__file__).resolve().parent))
import converter_expectations as cx  # noqa: E402
from make_hf_model import CONFIGS, make_model  # noqa: E402
from oracle_util import Failures, convert, run_optiq, work_dir  # noqa: E402

fails = Failures()
check = fails.check


def check_metadata(tag: str, reader: gguf.GGUFReader, config: dict, outtype: str) -> None:
    arch = cx.arch_of(config)
    fields = {k: f for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    expected = {**cx.general_metadata(config, outtype), **cx.arch_metadata(config)}
    for key, (vtype, value) in expected.items():
        f = fields.get(key)
        if not check(f is not None, f"{tag}: missing key {key}"):
            continue
        check(f.types == [vtype], f"{tag}: {key} has type {[t.name for t in f.types]}, want {vtype.name}")
        got = f.contents()
        check(got == value and type(got) is type(value), f"{tag}: {key} = {got!r}, want {value!r}")
    arch_keys = {k for k in fields if k.startswith(arch + ".")}
    extra = arch_keys - expected.keys()
    check(not extra, f"{tag}: {arch}.* keys llama.cpp's converter would not write: {sorted(extra)}")
    # Whatever else is there must be in a namespace llama.cpp knows (general.*, tokenizer.*).
    stray = [k for k in fields if not k.startswith((arch + ".", "general.", "tokenizer."))]
    check(not stray, f"{tag}: keys outside general./tokenizer./{arch}.: {stray}")


def check_tensors(tag: str, reader: gguf.GGUFReader, model, outtype: str) -> None:
    config = model.config
    got = {t.name: t for t in reader.tensors}
    expected_names: dict[str, str] = {}  # gguf name -> hf name
    for hf_name in model.dtypes:
        g = cx.gguf_tensor_name(config, hf_name)
        if g is not None:
            check(g not in expected_names, f"{tag}: two HF tensors map to {g}")
            expected_names[g] = hf_name
    factors = cx.llama3_rope_factors(config)
    want = set(expected_names) | ({"rope_freqs.weight"} if factors is not None else set())
    check(set(got) == want, f"{tag}: tensor names differ from gguf-py's mapping: "
          f"missing {sorted(want - set(got))}, extra {sorted(set(got) - want)}")
    check(len(reader.tensors) == len(got), f"{tag}: duplicate tensor names")

    for g, hf_name in expected_names.items():
        t = got.get(g)
        if t is None:
            continue
        values = cx.transformed_f32(config, hf_name, model.values[hf_name])
        qtype = cx.out_qtype(g, values.ndim, outtype)
        check(list(t.shape) == list(reversed(values.shape)),
              f"{tag}: {g} shape {list(t.shape)}, want {list(reversed(values.shape))} (ggml order)")
        if not check(t.tensor_type == qtype, f"{tag}: {g} type {t.tensor_type.name}, want {qtype.name}"):
            continue
        want = np.frombuffer(cx.encode(values, qtype), dtype=np.uint8)
        have = np.frombuffer(t.data.tobytes(), dtype=np.uint8)
        n_bad = int((want != have).sum()) if want.size == have.size else want.size
        check(n_bad == 0, f"{tag}: {g} ({qtype.name}) data differs from the converter's in {n_bad} "
              f"of {want.size} bytes (sizes {have.size} vs {want.size})")

    if factors is not None and "rope_freqs.weight" in got:
        t = got["rope_freqs.weight"]
        lo, hi, smooth = factors
        check(t.tensor_type == Q.F32, f"{tag}: rope_freqs.weight type {t.tensor_type.name}, want F32")
        check(list(t.shape) == [lo.size], f"{tag}: rope_freqs.weight shape {list(t.shape)}, want [{lo.size}]")
        if t.tensor_type == Q.F32 and list(t.shape) == [lo.size]:
            have = np.asarray(t.data, dtype=np.float32)
            # Outside the smoothing band the factor is exactly 1 or `factor`; inside, the
            # converter's float32 arithmetic bounds it (see llama3_rope_factors).
            ok = (have >= lo) & (have <= hi)
            bad = np.flatnonzero(~ok)
            check(bool(ok.all()), f"{tag}: rope_freqs.weight outside what llama.cpp's converter computes at "
                  + ", ".join(f"[{i}]: {float(have[i]):.9g} (bits {have[i:i+1].view(np.uint32)[0]:#x}), want "
                              f"{float(lo[i]):.9g}..{float(hi[i]):.9g} (bits {lo[i:i+1].view(np.uint32)[0]:#x}.."
                              f"{hi[i:i+1].view(np.uint32)[0]:#x})" for i in bad))
            check(bool(smooth.sum() >= 2 and (~smooth).sum() >= 2),
                  f"{tag}: test config should exercise all three llama3 bands, got {smooth}")


def check_alignment(tag: str, reader: gguf.GGUFReader) -> None:
    align_field = reader.fields.get(gguf.Keys.General.ALIGNMENT)
    align = align_field.contents() if align_field else gguf.GGUF_DEFAULT_ALIGNMENT
    for t in reader.tensors:
        check(t.data_offset % align == 0, f"{tag}: {t.name} data at {t.data_offset} not {align}-aligned")


def convert_cases(work: Path) -> None:
    for variant in CONFIGS:
        model = make_model(variant, work / "hf" / variant)
        for outtype in ("f32", "f16", "bf16"):
            tag = f"{variant}/{outtype}"
            out = work / "out" / f"{variant}-{outtype}.gguf"
            out.parent.mkdir(parents=True, exist_ok=True)
            try:
                convert(model.dir, out, outtype)
            except AssertionError as e:
                check(False, f"{tag}: {e}")
                continue
            reader = gguf.GGUFReader(out)
            check_metadata(tag, reader, model.config, outtype)
            check_tensors(tag, reader, model, outtype)
            check_alignment(tag, reader)


def expect_failure(tag: str, model_dir: Path, out_dir: Path, must_mention: list[str]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    r = run_optiq("convert", model_dir, "-o", out_dir / "model.gguf", "--outtype", "f16")
    check(r.returncode == 2, f"{tag}: exit {r.returncode}, want 2 (stderr: {r.stderr.strip()})")
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    check(len(lines) == 1 and lines[0].startswith("optiq: error: "),
          f"{tag}: want one 'optiq: error:' line, got {lines}")
    for s in must_mention:
        check(s in r.stderr, f"{tag}: error should mention {s!r}: {r.stderr.strip()}")
    left = sorted(p.name for p in out_dir.iterdir())
    check(not left, f"{tag}: files left in the output folder after failing: {left}")


def error_cases(work: Path) -> None:
    base = work / "bad"
    # Unknown architecture: the message names it and lists what is supported.
    cfg = dict(CONFIGS["llama"], architectures=["MambaForCausalLM"], model_type="mamba")
    m = make_model("llama", base / "unknown_arch", config=cfg)
    expect_failure("unknown architecture", m.dir, base / "out_unknown_arch",
                   ["config.json", "MambaForCausalLM", "LlamaForCausalLM", "Qwen2ForCausalLM",
                    "Qwen3ForCausalLM", "Gemma3ForCausalLM"])

    # An integer weight cannot be converted to floats; the error names the tensor.
    bad = "model.layers.1.mlp.up_proj.weight"
    shape = (CONFIGS["llama"]["intermediate_size"], CONFIGS["llama"]["hidden_size"])
    m = make_model("llama", base / "i64", extra={bad: ("I64", np.arange(np.prod(shape), dtype=np.int64).reshape(shape))})
    expect_failure("I64 weight", m.dir, base / "out_i64", [bad, "I64"])

    # A shard the index names is missing.
    m = make_model("qwen2", base / "missing_shard")
    (m.dir / "model-00002-of-00002.safetensors").unlink()
    expect_failure("missing shard", m.dir, base / "out_missing_shard", ["model-00002-of-00002.safetensors"])


def main() -> None:
    work = work_dir("hf_convert")
    convert_cases(work)
    error_cases(work)
    fails.finish("oracle_hf_convert")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
