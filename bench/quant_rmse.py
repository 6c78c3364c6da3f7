"""Per-type quantization error of optiq next to llama.cpp's on the same tensors.

usage: .cache/venv/bin/python bench/quant_rmse.py [build/tests/optiq_quant_tool]

For every block type optiq writes, quantizes three fixed tensors with optiq (the test-only
optiq_quant_tool) and with llama.cpp's ggml_quantize_chunk (libggml-base from node-llama-cpp's
prebuilt binaries, through ctypes), dequantizes both with gguf-py, and prints the RMSE against
the input as a Markdown table:
  synthetic  ggml's test-quantize-fns tensor 0.1 + 2 cos(i + 0.5), 4096 values (RMS ~1.4);
  synthetic+imatrix  the same with importance weights 1 + (i mod 7) (a made-up, fixed imatrix);
  weights    64 rows x 4096 of N(0, 0.02) with 1% of the values x10 (weight-like outliers).
"""
from __future__ import annotations

import ctypes
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T

ROOT = Path(__file__).resolve().parent.parent
TOOL = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build/tests/optiq_quant_tool"
LIBGGML = ROOT / ".cache/node/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/libggml-base.so"
TYPES = [T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.IQ4_NL, T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K, T.IQ4_XS]
N = 4096


def tensors() -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    i = np.arange(N, dtype=np.float32)
    synthetic = (0.1 + 2.0 * np.cos(i + 0.5)).astype(np.float32)[None]
    importance = (1.0 + (np.arange(N) % 7)).astype(np.float32)
    rng = np.random.default_rng(7)
    w = rng.normal(0, 0.02, (64, N))
    w[rng.random(w.shape) < 0.01] *= 10
    return {"synthetic": (synthetic, None), "synthetic+imatrix": (synthetic, importance),
            "weights": (w.astype(np.float32), None)}


def optiq(qtype: T, x: np.ndarray, imatrix: np.ndarray | None, d: Path) -> np.ndarray:
    (d / "in.f32").write_bytes(x.tobytes())
    args = [str(TOOL), "quantize", qtype.name, str(N), str(d / "in.f32"), str(d / "out.bin")]
    if imatrix is not None:
        (d / "im.f32").write_bytes(imatrix.tobytes())
        args.append(str(d / "im.f32"))
    subprocess.run(args, check=True)
    return np.frombuffer((d / "out.bin").read_bytes(), dtype=np.uint8)


def ggml(lib: ctypes.CDLL, qtype: T, x: np.ndarray, imatrix: np.ndarray | None) -> np.ndarray:
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    rows = x.shape[0]
    out = np.zeros(rows * N // block * size, dtype=np.uint8)
    x = np.ascontiguousarray(x)
    im = None if imatrix is None else imatrix.ctypes.data_as(ctypes.c_void_p)
    lib.ggml_quantize_chunk(int(qtype), x.ctypes.data_as(ctypes.c_void_p), out.ctypes.data_as(ctypes.c_void_p),
                            0, rows, N, im)
    return out


def rmse(x: np.ndarray, q: np.ndarray, qtype: T) -> float:
    y = gguf.quants.dequantize(q.reshape(x.shape[0], -1), qtype).reshape(x.shape)
    return float(np.sqrt(np.mean((y.astype(np.float64) - x) ** 2)))


def main() -> None:
    lib = ctypes.CDLL(str(LIBGGML))
    lib.ggml_quantize_chunk.restype = ctypes.c_size_t
    lib.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                        ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
    data = tensors()
    print("| type | bpw | " + " | ".join(f"{k} optiq | {k} llama.cpp" for k in data) + " | optiq ≤ llama.cpp |")
    print("|---|---|" + "---|---|" * len(data) + "---|")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for qtype in TYPES:
            block, size = gguf.GGML_QUANT_SIZES[qtype]
            cells, ok = [], True
            for x, im in data.values():
                a, b = rmse(x, optiq(qtype, x, im, d), qtype), rmse(x, ggml(lib, qtype, x, im), qtype)
                ok &= a <= b
                cells += [f"{a:.5f}", f"{b:.5f}"]
            print(f"| {qtype.name} | {size * 8 / block:.4g} | " + " | ".join(cells) + f" | {'yes' if ok else 'NO'} |")


if __name__ == "__main__":
    main()
