"""optiq's block quantization against two independent implementations:
- dequantization of every implemented type equals gguf-py's `gguf.quants.dequantize` bit for bit,
  on blocks optiq wrote and on random bytes;
- quantized bytes equal llama.cpp's `ggml_quantize_chunk` (libggml-base from node-llama-cpp's
  prebuilt CPU binaries, the same llama.cpp the other oracle tests run), with and without an importance matrix, even for NaN/Inf input, and gguf-py's
  `gguf.quants.quantize` where gguf-py can quantize the type.
optiq is reached through the test-only optiq_quant_tool ($OPTIQ_QUANT_TOOL)."""
from __future__ import annotations

import ctypes
import os
import subprocess
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T

from oracle_util import Failures, work_dir

TYPES = [T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.IQ4_NL, T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K, T.IQ4_XS]
GGUF_PY_QUANTIZES = {T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0}
N_PER_ROW = 512  # a multiple of every block size (K-quants: 256)
TOOL = os.environ["OPTIQ_QUANT_TOOL"]
LIBGGML = (Path(os.environ["OPTIQ_CACHE"]) / "node" / "node_modules" / "@node-llama-cpp" / "linux-x64"
           / "bins" / "linux-x64" / "libggml-base.so")


def test_rows(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Named (rows, N_PER_ROW) float32 inputs: realistic weights and adversarial blocks."""
    n = N_PER_ROW
    outlier = rng.normal(0, 0.02, n)
    outlier[[5, 77, 300]] = [3.0, -9.0, 40.0]
    mixed = rng.normal(0, 1, n) * np.repeat(10.0 ** rng.uniform(-6, 4, n // 32), 32)
    steps = np.round(rng.normal(0, 4, n)) * 0.25  # values already on a grid
    non_finite = rng.normal(0, 1, (3, n))
    non_finite[0, 3] = non_finite[2, 7] = np.nan
    non_finite[1, 40], non_finite[2, 300] = np.inf, -np.inf
    rows = {
        "normal": rng.normal(0, 1, (8, n)),
        "weights": rng.normal(0, 0.02, (8, n)),
        "uniform": rng.uniform(-1, 1, (4, n)),
        "positive": rng.uniform(0.5, 2, (2, n)),
        "negative": -rng.uniform(0.5, 2, (2, n)),
        "zeros": np.zeros((1, n)),
        "constant": np.full((2, n), [[0.75], [-3.5]]),
        "huge": rng.normal(0, 1e4, (1, n)),
        "tiny": rng.normal(0, 1e-6, (1, n)),
        "subnormal": rng.normal(0, 1e-39, (1, n)),
        "outlier": outlier[None],
        "mixed_scales": mixed[None],
        "grid": steps[None],
        "non_finite": non_finite,
    }
    return {k: v.astype(np.float32) for k, v in rows.items()}


def tool(*args: str | Path) -> None:
    r = subprocess.run([TOOL, *map(str, args)], capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError(f"quant_tool {' '.join(map(str, args))} failed: {r.stderr}")


def optiq_quantize(d: Path, qtype: T, x: np.ndarray, imatrix: np.ndarray | None) -> np.ndarray:
    (d / "in.f32").write_bytes(x.tobytes())
    args = ["quantize", qtype.name, N_PER_ROW, d / "in.f32", d / "out.bin"]
    if imatrix is not None:
        (d / "imatrix.f32").write_bytes(imatrix.tobytes())
        args.append(d / "imatrix.f32")
    tool(*args)
    return np.frombuffer((d / "out.bin").read_bytes(), dtype=np.uint8)


def optiq_dequantize(d: Path, qtype: T, q: np.ndarray) -> np.ndarray:
    (d / "in.bin").write_bytes(q.tobytes())
    tool("dequantize", qtype.name, N_PER_ROW, d / "in.bin", d / "out.f32")
    return np.frombuffer((d / "out.f32").read_bytes(), dtype=np.float32)


def ggml_quantize(lib: ctypes.CDLL, qtype: T, x: np.ndarray, imatrix: np.ndarray | None) -> np.ndarray:
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    rows = x.size // N_PER_ROW
    out = np.zeros(rows * N_PER_ROW // block * size, dtype=np.uint8)
    x = np.ascontiguousarray(x)
    im = None if imatrix is None else imatrix.ctypes.data_as(ctypes.c_void_p)
    lib.ggml_quantize_chunk(int(qtype), x.ctypes.data_as(ctypes.c_void_p), out.ctypes.data_as(ctypes.c_void_p),
                            0, rows, N_PER_ROW, im)
    return out


def same_floats(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit-identical, except that any NaN matches any NaN."""
    if a.shape != b.shape:
        return False
    both_nan = np.isnan(a) & np.isnan(b)
    return bool(np.all(both_nan | (a.view(np.uint32) == b.view(np.uint32))))


def compare(f: Failures, ours: np.ndarray, oracle: np.ndarray, floats: bool, what: str) -> None:
    """One check; on a mismatch the message says how many elements differ and the first one."""
    same = same_floats(ours, oracle) if floats else np.array_equal(ours, oracle)
    if same or ours.shape != oracle.shape:
        f.check(same, f"{what}: shapes {ours.shape} vs {oracle.shape}")
        return
    if floats:
        bad = np.flatnonzero(~(np.isnan(ours) & np.isnan(oracle)) & (ours.view(np.uint32) != oracle.view(np.uint32)))
    else:
        bad = np.flatnonzero(ours != oracle)
    i = int(bad[0])
    f.check(False, f"{what}: {bad.size} of {ours.size} differ, first at {i}: optiq {ours[i]!r}, oracle {oracle[i]!r}")


def main() -> None:
    # Adversarial inputs overflow and divide by zero inside gguf-py's numpy code by design.
    np.seterr(all="ignore")
    d = work_dir("quants")
    rng = np.random.default_rng(1234)
    lib = ctypes.CDLL(str(LIBGGML))
    lib.ggml_quantize_chunk.restype = ctypes.c_size_t
    lib.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                        ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
    inputs = test_rows(rng)
    imatrices = {
        "imatrix_random": rng.uniform(0, 5, N_PER_ROW).astype(np.float32) ** 2,
        "imatrix_ones": np.ones(N_PER_ROW, dtype=np.float32),
    }
    f = Failures()
    counts = {"dequant_blocks": 0, "quant_blocks": 0}
    for qtype in TYPES:
        block, size = gguf.GGML_QUANT_SIZES[qtype]
        for name, x in inputs.items():
            ours = optiq_quantize(d, qtype, x, None)
            n_blocks = x.size // block
            counts["quant_blocks"] += n_blocks
            ref = ggml_quantize(lib, qtype, x, None)
            compare(f, ours, ref, False, f"{qtype.name} {name}: bytes vs llama.cpp")
            # gguf-py's NaN -> integer casts are numpy's, not C's on x86: compare finite input only.
            if qtype in GGUF_PY_QUANTIZES and np.isfinite(x).all():
                py = gguf.quants.quantize(x, qtype).reshape(-1)
                compare(f, ours, py, False, f"{qtype.name} {name}: bytes vs gguf-py")
            for im_name, im in imatrices.items():
                ours_im = optiq_quantize(d, qtype, x, im)
                ref_im = ggml_quantize(lib, qtype, x, im)
                counts["quant_blocks"] += n_blocks
                compare(f, ours_im, ref_im, False, f"{qtype.name} {name} {im_name}: bytes vs llama.cpp")
            deq = optiq_dequantize(d, qtype, ours)
            py_deq = gguf.quants.dequantize(ours.reshape(-1, size), qtype).reshape(-1)
            counts["dequant_blocks"] += n_blocks
            compare(f, deq, py_deq, True, f"{qtype.name} {name}: dequantized vs gguf-py")
        # Random bytes: every bit pattern of scales and levels, including NaN/Inf/subnormal scales.
        raw = rng.integers(0, 256, (64 * N_PER_ROW // block) * size, dtype=np.uint8)
        deq = optiq_dequantize(d, qtype, raw)
        py_deq = gguf.quants.dequantize(raw.reshape(-1, size), qtype).reshape(-1)
        counts["dequant_blocks"] += raw.size // size
        compare(f, deq, py_deq, True, f"{qtype.name} random bytes: dequantized vs gguf-py")
    print(f"oracle_quants: {len(TYPES)} types, {counts['quant_blocks']} blocks quantized and compared, "
          f"{counts['dequant_blocks']} blocks dequantized and compared")
    f.finish("oracle_quants")


if __name__ == "__main__":
    main()
