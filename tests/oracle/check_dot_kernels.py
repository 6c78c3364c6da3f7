"""optiq's dot-product kernels and activation quantizers against llama.cpp's CPU backend.

llama.cpp's libggml-cpu-<variant>.so (node-llama-cpp's prebuilt binaries) exports ggml_get_type_traits_cpu(type): the activation quantizer (from_float), the dot
kernel (vec_dot) and the activation type (vec_dot_type) its matmul uses for each weight type.
For every weight type optiq multiplies:
- the activation type is the same as ggml's;
- optiq's activation quantizer writes the same bytes as ggml's from_float, on random rows and
  adversarial ones (zeros, constants, outliers, huge and tiny values, rounding ties);
- the KV cache's row quantizer (quantize_row_from_float) writes the same bytes as ggml's
  from_float of each cache block type (Q8_0, Q5_0, Q5_1, Q4_0, Q4_1, IQ4_NL) on those rows;
- optiq's scalar and AVX2 dot products of the same weight and activation bytes agree with ggml's
  vec_dot within 1e-5 of sum |w_i a_i| (the max difference is printed), on quantized random
  weights and on random bytes (every bit pattern; a non-finite ggml result must be non-finite
  in optiq too).
All of it against the haswell variant, whose arithmetic optiq's AVX2 kernels reproduce, and
against the variant llama.cpp picks on this CPU when that is another (llama_tools.py).
optiq is reached through the test-only optiq_quant_tool ($OPTIQ_QUANT_TOOL)."""
from __future__ import annotations

import ctypes
import os
import subprocess
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T

from llama_tools import GGML_BINS, PINNED, machine_summary, native_variant
from oracle_util import Failures, work_dir

N = 1024  # row length: a multiple of every block size
TOOL = os.environ["OPTIQ_QUANT_TOOL"]
WEIGHT_TYPES = [T.F32, T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.IQ4_NL,
                T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K, T.IQ4_XS]
EXPECTED_ACT = {T.F32: T.F32, T.F16: T.F16, T.BF16: T.BF16, T.Q4_0: T.Q8_0, T.Q5_0: T.Q8_0, T.Q8_0: T.Q8_0,
                T.IQ4_NL: T.Q8_0, T.Q4_1: T.Q8_1, T.Q5_1: T.Q8_1}
# Bytes per block of the activation types (gguf-py still lists Q8_1 with f32 scales, 40 bytes;
# ggml's block_q8_1 has two halves, 36).
ACT_BLOCK = {T.F32: (1, 4), T.F16: (1, 2), T.BF16: (1, 2), T.Q8_0: (32, 34), T.Q8_1: (32, 36), T.Q8_K: (256, 292)}
# The row of activation_rows() whose values are exact rounding ties. ggml's SIMD quantizers (haswell
# and up) round them to nearest even, as optiq does; its scalar code (the sse42 and x64 variants)
# rounds them away from zero, so against those variants this row alone may differ.
TIE_ROW = 10


class CpuTraits(ctypes.Structure):
    """ggml-cpu.h's struct ggml_type_traits_cpu."""
    _fields_ = [("from_float", ctypes.c_void_p), ("vec_dot", ctypes.c_void_p),
                ("vec_dot_type", ctypes.c_int), ("nrows", ctypes.c_int64)]


FROM_FLOAT = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)
VEC_DOT = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.POINTER(ctypes.c_float), ctypes.c_size_t, ctypes.c_void_p,
                           ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)


def load_ggml_cpu(variant: str) -> tuple[ctypes.CDLL, ctypes.CDLL]:
    base = ctypes.CDLL(str(GGML_BINS / "libggml-base.so"), mode=ctypes.RTLD_GLOBAL)
    cpu = ctypes.CDLL(str(GGML_BINS / f"libggml-cpu-{variant}.so"))
    cpu.ggml_cpu_init.restype = None
    cpu.ggml_cpu_init()
    cpu.ggml_get_type_traits_cpu.restype = ctypes.POINTER(CpuTraits)
    cpu.ggml_get_type_traits_cpu.argtypes = [ctypes.c_int]
    return base, cpu


def row_bytes(t: T, n: int = N) -> int:
    block, size = ACT_BLOCK.get(t) or gguf.GGML_QUANT_SIZES[t]
    return n // block * size


def tool(*args: str | Path) -> None:
    r = subprocess.run([TOOL, *map(str, args)], capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError(f"quant_tool {' '.join(map(str, args))} failed: {r.stderr}")


def activation_rows(rng: np.random.Generator) -> np.ndarray:
    """(rows, N) float32: realistic activations and rows that stress the quantizers."""
    outlier = rng.normal(0, 0.01, N)
    outlier[[3, 500]] = [60.0, -35.0]
    # amax 127 in every block makes the scale exactly 1, so x.5 values are rounding ties (row TIE_ROW).
    ties = np.tile(np.concatenate([[127.0], np.arange(31) % 9 - 4.5]), N // 32)
    rows = [rng.normal(0, 1, (4, N)), np.zeros((1, N)), np.full((1, N), -2.25), outlier[None],
            rng.normal(0, 1e4, (1, N)), rng.normal(0, 300, (1, N)), rng.normal(0, 1e-6, (1, N)), ties[None],
            rng.normal(0, 1, N)[None] * np.repeat(10.0 ** rng.uniform(-4, 2, N // 32), 32)]
    out = np.concatenate(rows).astype(np.float32)
    assert np.array_equal(out[TIE_ROW], ties), "TIE_ROW must name the row of ties"
    return out


def ggml_from_float(traits: CpuTraits, act_type: T, x: np.ndarray) -> np.ndarray:
    out = np.zeros((x.shape[0], row_bytes(act_type)), dtype=np.uint8)  # Q8_K leaves bsums of zero blocks
    fn = FROM_FLOAT(traits.from_float)
    for r in range(x.shape[0]):
        row = np.ascontiguousarray(x[r])
        fn(row.ctypes.data, out[r].ctypes.data, N)
    return out


def weight_rows(base: ctypes.CDLL, cpu: ctypes.CDLL, wtype: T, rng: np.random.Generator) -> np.ndarray:
    """(rows, row bytes): 6 rows quantized by ggml from realistic weights, 6 of random bytes."""
    x = rng.normal(0, 0.05, (6, N)).astype(np.float32)
    x[5] *= np.repeat(10.0 ** rng.uniform(-3, 3, N // 32), 32).astype(np.float32)
    if wtype in (T.F32, T.F16, T.BF16):
        quantized = ggml_from_float(cpu.ggml_get_type_traits_cpu(int(wtype)).contents, wtype, x)
    else:
        quantized = np.zeros((6, row_bytes(wtype)), dtype=np.uint8)
        base.ggml_quantize_chunk(int(wtype), x.ctypes.data_as(ctypes.c_void_p),
                                 quantized.ctypes.data_as(ctypes.c_void_p), 0, 6, N, None)
    raw = rng.integers(0, 256, (6, row_bytes(wtype)), dtype=np.uint8)
    return np.concatenate([quantized, raw])


def values(t: T, rows: np.ndarray) -> np.ndarray:
    """The float64 values rows of type t stand for (for the error scale sum |w a|)."""
    if t == T.F32:
        return rows.view(np.float32).astype(np.float64)
    if t == T.F16:
        return rows.view(np.float16).astype(np.float64)
    if t == T.BF16:
        return (rows.view(np.uint16).astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    if t in (T.Q8_0, T.Q8_1):
        blocks = rows.reshape(rows.shape[0], -1, ACT_BLOCK[t][1])
        d = blocks[:, :, :2].copy().view(np.float16).astype(np.float64)
        return (d * blocks[:, :, ACT_BLOCK[t][1] - 32:].view(np.int8)).reshape(rows.shape[0], N)
    if t == T.Q8_K:
        blocks = rows.reshape(rows.shape[0], -1, 292)
        d = blocks[:, :, :4].copy().view(np.float32).astype(np.float64)
        return (d * blocks[:, :, 4:260].view(np.int8)).reshape(rows.shape[0], N)
    return gguf.quants.dequantize(rows, t).reshape(rows.shape[0], N).astype(np.float64)


def main() -> None:
    np.seterr(all="ignore")  # random bytes hold NaN/Inf scales by design
    d = work_dir("dot_kernels")
    probe = subprocess.run([TOOL, "vec_dot", "q8_0", "32", "/dev/null", "/dev/null", "/dev/null", "avx2"],
                           capture_output=True, text=True)
    isas = ["scalar"] + (["avx2"] if probe.returncode == 0 else [])
    print(machine_summary())
    f = Failures()
    for variant in dict.fromkeys([PINNED, native_variant()]):
        print(f"oracle_dot_kernels: llama.cpp libggml-cpu-{variant}.so; optiq kernels: {', '.join(isas)}")
        check_variant(variant, isas, d, f)
    f.finish("oracle_dot_kernels")


def check_variant(variant: str, isas: list[str], d: Path, f: Failures) -> None:
    """Every check of the module docstring against one ggml CPU variant."""
    rng = np.random.default_rng(77)
    base, cpu = load_ggml_cpu(variant)
    base.ggml_quantize_chunk.restype = ctypes.c_size_t
    base.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                         ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
    acts = activation_rows(rng)
    (d / "acts.f32").write_bytes(acts.tobytes())

    act_bytes: dict[T, np.ndarray] = {}
    for act_type in ACT_BLOCK:
        traits = cpu.ggml_get_type_traits_cpu(int(act_type)).contents
        ref = ggml_from_float(traits, act_type, acts)
        tool("activation", act_type.name, N, d / "acts.f32", d / "act.bin")
        ours = np.frombuffer((d / "act.bin").read_bytes(), dtype=np.uint8).reshape(ref.shape)
        for r in range(acts.shape[0]):
            same = np.array_equal(ours[r], ref[r])
            if not same and r == TIE_ROW and variant != PINNED:
                print(f"  {act_type.name} activation: the rounding ties differ from {variant}'s scalar rounding")
                continue
            first = "" if same else f", first differing byte {int(np.flatnonzero(ours[r] != ref[r])[0])}"
            f.check(same, f"{variant}: {act_type.name} activation row {r}: bytes differ from ggml's from_float{first}")
        act_bytes[act_type] = ref

    # The KV cache's block types are written by ggml's CPU from_float of the type itself (what
    # ggml_set_rows runs when llama.cpp stores keys and values): optiq's quantize_row_from_float.
    for ktype in (T.Q8_0, T.Q5_0, T.Q5_1, T.Q4_0, T.Q4_1, T.IQ4_NL):
        ref = ggml_from_float(cpu.ggml_get_type_traits_cpu(int(ktype)).contents, ktype, acts)
        tool("from_float", ktype.name, N, d / "acts.f32", d / "kv.bin")
        ours = np.frombuffer((d / "kv.bin").read_bytes(), dtype=np.uint8).reshape(ref.shape)
        for r in range(acts.shape[0]):
            if ktype == T.IQ4_NL and not acts[r].any():
                continue  # ggml leaves its level buffer uninitialized for all-zero blocks (d = 0 either way)
            same = np.array_equal(ours[r], ref[r])
            if not same and r == TIE_ROW and variant != PINNED:
                print(f"  {ktype.name} cache: the rounding ties differ from {variant}'s scalar rounding")
                continue
            first = "" if same else f", first differing byte {int(np.flatnonzero(ours[r] != ref[r])[0])}"
            f.check(same, f"{variant}: {ktype.name} cache row {r}: bytes differ from ggml's from_float{first}")

    for wtype in WEIGHT_TYPES:
        traits = cpu.ggml_get_type_traits_cpu(int(wtype)).contents
        act_type = T(traits.vec_dot_type)
        f.check(act_type == EXPECTED_ACT.get(wtype, T.Q8_K),
                f"{variant}: {wtype.name}: ggml pairs it with {act_type.name}, optiq with {EXPECTED_ACT.get(wtype, T.Q8_K).name}")
        w = weight_rows(base, cpu, wtype, rng)
        a = act_bytes[act_type]
        # Every weight row with every activation row.
        w_pairs = np.repeat(w, a.shape[0], axis=0)
        a_pairs = np.tile(a, (w.shape[0], 1))
        (d / "w.bin").write_bytes(w_pairs.tobytes())
        (d / "a.bin").write_bytes(a_pairs.tobytes())
        vec_dot = VEC_DOT(traits.vec_dot)
        ref = np.zeros(w_pairs.shape[0], dtype=np.float32)
        s = ctypes.c_float()
        for r in range(w_pairs.shape[0]):
            vec_dot(N, ctypes.byref(s), 0, w_pairs[r].ctypes.data, 0, a_pairs[r].ctypes.data, 0, 1)
            ref[r] = s.value
        magnitude = np.abs(values(wtype, w_pairs) * values(act_type, a_pairs)).sum(axis=1)
        report = []
        for isa in isas:
            tool("vec_dot", wtype.name, N, d / "w.bin", d / "a.bin", d / "dot.f32", isa)
            ours = np.frombuffer((d / "dot.f32").read_bytes(), dtype=np.float32)
            finite = np.isfinite(ref) & np.isfinite(magnitude)
            for r in np.flatnonzero(~np.isfinite(ref)):
                f.check(not np.isfinite(ours[r]), f"{variant}: {wtype.name} {isa} pair {r}: ggml {ref[r]}, optiq {ours[r]}")
            diff = np.abs(ours[finite].astype(np.float64) - ref[finite]) / np.maximum(magnitude[finite], 1e-30)
            worst = float(diff.max(initial=0.0))
            for r in np.flatnonzero(finite)[diff > 1e-5]:
                f.check(False, f"{variant}: {wtype.name} {isa} pair {r}: optiq {ours[r]!r}, ggml {ref[r]!r}")
            f.check(True, f"{wtype.name} {isa}")
            report.append(f"{isa} max |diff|/sum|wa| {worst:.2e}, equal {int((ours[finite] == ref[finite]).sum())}"
                          f"/{int(finite.sum())}")
        print(f"  {wtype.name:7s} x {act_type.name:5s}: " + "; ".join(report))


if __name__ == "__main__":
    main()
