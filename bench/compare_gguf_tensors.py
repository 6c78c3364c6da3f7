#!/usr/bin/env python3
"""Checks that two GGUF files hold the same tensors (names, types, shapes, data bytes) using
gguf-py, the reader llama.cpp ships; header metadata is allowed to differ.
    compare_gguf_tensors.py A.gguf B.gguf
Prints one summary line (and one per differing tensor); exit status 0 only if all match.
"""
import sys

import numpy as np
from gguf import GGUFReader


def main(path_a, path_b):
    a = {t.name: t for t in GGUFReader(path_a).tensors}
    b = {t.name: t for t in GGUFReader(path_b).tensors}
    problems = [f"only in {path_a}: {n}" for n in sorted(a.keys() - b.keys())]
    problems += [f"only in {path_b}: {n}" for n in sorted(b.keys() - a.keys())]
    compared = 0
    for name in sorted(a.keys() & b.keys()):
        x, y = a[name], b[name]
        if x.tensor_type != y.tensor_type or list(x.shape) != list(y.shape):
            problems.append(f"{name}: {x.tensor_type.name}{list(x.shape)} vs "
                            f"{y.tensor_type.name}{list(y.shape)}")
            continue
        bx, by = x.data.reshape(-1).view(np.uint8), y.data.reshape(-1).view(np.uint8)
        compared += bx.size
        if not np.array_equal(bx, by):
            msg = f"{name}: {np.count_nonzero(bx != by)} bytes differ"
            if x.data.dtype.kind == "f":  # quantized blocks are raw bytes, not values
                diff = np.abs(x.data.astype(np.float64) - y.data.astype(np.float64)).max()
                msg += f", max |difference| {diff:g}"
            problems.append(msg)
    for p in problems:
        print("  " + p)
    verdict = "identical" if not problems else f"{len(problems)} differences"
    print(f"tensor data: {len(a)} vs {len(b)} tensors, {compared / 1e6:.1f} MB compared: {verdict}")
    return 0 if not problems else 1


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: compare_gguf_tensors.py A.gguf B.gguf")
    sys.exit(main(sys.argv[1], sys.argv[2]))
