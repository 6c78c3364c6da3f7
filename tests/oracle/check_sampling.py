"""oracle_sampling: each step of optiq's sampler chain (src/engine/sampling.h) against the
llama.cpp sampler of the same name, called through ctypes in node-llama-cpp's prebuilt libllama
(the llama.cpp the other oracle tests run), on random rows of logits:
- top-k: the same tokens in the same (descending) order, for k = 1, 5, 40, 0 (off) and > n_vocab;
- top-p and min-p: the same set of tokens, for several p, including vocabularies over 1024
  (llama.cpp's top-p then takes its partial-sort path);
- temperature and the repetition penalty: the same logits (within float rounding), the penalty
  with histories that repeat tokens;
- greedy (temperature 0): the same token.
optiq is reached through the test-only optiq_sampling_tool (argv[1])."""
from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from oracle_util import Failures, work_dir

TOOL = sys.argv[1]
LIBLLAMA = (Path(os.environ["OPTIQ_CACHE"]) / "node" / "node_modules" / "@node-llama-cpp" / "linux-x64" / "bins"
            / "linux-x64" / "libllama.v0.5.0.so")


class TokenData(ctypes.Structure):
    _fields_ = [("id", ctypes.c_int32), ("logit", ctypes.c_float), ("p", ctypes.c_float)]


class TokenDataArray(ctypes.Structure):
    _fields_ = [("data", ctypes.POINTER(TokenData)), ("size", ctypes.c_size_t),
                ("selected", ctypes.c_int64), ("sorted", ctypes.c_bool)]


def load_llama() -> ctypes.CDLL:
    if not LIBLLAMA.exists():
        raise SystemExit(f"check_sampling: {LIBLLAMA} is missing; run scripts/test.sh")
    lib = ctypes.CDLL(str(LIBLLAMA))
    sig = {
        "llama_sampler_init_top_k": [ctypes.c_int32],
        "llama_sampler_init_top_p": [ctypes.c_float, ctypes.c_size_t],
        "llama_sampler_init_min_p": [ctypes.c_float, ctypes.c_size_t],
        "llama_sampler_init_temp": [ctypes.c_float],
        "llama_sampler_init_greedy": [],
        "llama_sampler_init_penalties": [ctypes.c_int32, ctypes.c_int32, ctypes.c_float, ctypes.c_float, ctypes.c_float],
    }
    for name, args in sig.items():
        getattr(lib, name).restype = ctypes.c_void_p
        getattr(lib, name).argtypes = args
    lib.llama_sampler_apply.argtypes = [ctypes.c_void_p, ctypes.POINTER(TokenDataArray)]
    lib.llama_sampler_accept.argtypes = [ctypes.c_void_p, ctypes.c_int32]
    lib.llama_sampler_free.argtypes = [ctypes.c_void_p]
    return lib


def llama_apply(lib, sampler, logits: np.ndarray, history=()) -> tuple[list[int], list[float], int]:
    """Kept ids and logits in llama.cpp's order, and the selected index (-1 if none)."""
    buf = (TokenData * len(logits))(*[TokenData(i, float(x), 0.0) for i, x in enumerate(logits)])
    arr = TokenDataArray(buf, len(logits), -1, False)
    for t in history:
        lib.llama_sampler_accept(sampler, t)
    lib.llama_sampler_apply(sampler, ctypes.byref(arr))
    lib.llama_sampler_free(sampler)
    ids = [arr.data[i].id for i in range(arr.size)]
    return ids, [arr.data[i].logit for i in range(arr.size)], arr.selected


def optiq_apply(d: Path, step: str, value: float, logits: np.ndarray, history=()) -> tuple[list[int], list[float]]:
    path = d / "logits.f32"
    path.write_bytes(logits.astype(np.float32).tobytes())
    r = subprocess.run([TOOL, step, repr(value), str(path), *map(str, history)], capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError(f"sampling_tool {step} {value} failed: {r.stderr}")
    rows = [line.split() for line in r.stdout.splitlines()]
    return [int(a) for a, _ in rows], [float(b) for _, b in rows]


def main() -> None:
    f = Failures()
    lib = load_llama()
    d = work_dir("sampling")
    rng = np.random.default_rng(20240607)
    rows = []
    for n_vocab in (32, 300, 3000):
        for spread in (0.5, 2.0, 6.0):
            rows.append(rng.normal(0, spread, n_vocab).astype(np.float32))

    for r, logits in enumerate(rows):
        n = len(logits)
        name = f"row {r} (n_vocab {n})"
        for k in (1, 5, 40, 0, n + 10):
            ours, _ = optiq_apply(d, "top_k", k, logits)
            theirs, _, _ = llama_apply(lib, lib.llama_sampler_init_top_k(k), logits)
            f.check(ours == theirs, f"{name} top_k {k}: optiq keeps {ours[:8]}... ({len(ours)}), llama.cpp {theirs[:8]}... ({len(theirs)})")
        for p in (0.05, 0.3, 0.5, 0.9, 0.95, 1.0):
            ours, _ = optiq_apply(d, "top_p", p, logits)
            theirs, _, _ = llama_apply(lib, lib.llama_sampler_init_top_p(p, 0), logits)
            f.check(set(ours) == set(theirs), f"{name} top_p {p}: optiq keeps {len(ours)}, llama.cpp {len(theirs)}")
        for p in (0.01, 0.05, 0.2, 0.9, 0.0):
            ours, _ = optiq_apply(d, "min_p", p, logits)
            theirs, _, _ = llama_apply(lib, lib.llama_sampler_init_min_p(p, 0), logits)
            f.check(set(ours) == set(theirs), f"{name} min_p {p}: optiq keeps {len(ours)}, llama.cpp {len(theirs)}")
        for t in (0.3, 0.8, 1.7):
            ours_ids, ours = optiq_apply(d, "temp", t, logits)
            theirs_ids, theirs, _ = llama_apply(lib, lib.llama_sampler_init_temp(t), logits)
            f.check(ours_ids == theirs_ids and np.allclose(ours, theirs, rtol=1e-6, atol=0),
                    f"{name} temperature {t}: logits differ")
        history = [int(x) for x in rng.integers(0, n, 24)] + [int(np.argmax(logits)), int(np.argmin(logits))] * 2
        for penalty in (1.3, 0.8, 1.0):
            ours_ids, ours = optiq_apply(d, "penalty", penalty, logits, history)
            theirs_ids, theirs, _ = llama_apply(
                lib, lib.llama_sampler_init_penalties(n, len(history), penalty, 0.0, 0.0), logits, history)
            f.check(ours_ids == theirs_ids and np.allclose(ours, theirs, rtol=1e-6, atol=0),
                    f"{name} repeat penalty {penalty}: logits differ")
        ours, _ = optiq_apply(d, "greedy", 0, logits)
        ids, _, selected = llama_apply(lib, lib.llama_sampler_init_greedy(), logits)
        f.check(selected >= 0 and ours == [ids[selected]], f"{name} greedy: optiq {ours}, llama.cpp {ids[selected]}")

    f.finish("oracle_sampling")


if __name__ == "__main__":
    main()
