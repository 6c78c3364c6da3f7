"""Running the llama.cpp tools scripts/build_llama_tools.sh compiles into .cache/llama-tools, and
knowing which of ggml's CPU variants they run.

node-llama-cpp ships ggml's CPU backend as one library per instruction-set level
(libggml-cpu-<variant>.so: x64, sse42, sandybridge, haswell, skylakex, zen4, ...). At start ggml
loads every one it finds beside the executable, asks each for its ggml_backend_score() (0 when
the CPU lacks an instruction it needs, otherwise higher for newer levels) and keeps the best.
The variants round and sum differently (FMA or not, 8 or 16 floats per accumulator, other
tile sizes), so the same model gives last-bit different logits on different machines.

optiq's kernels reproduce the haswell variant's arithmetic (AVX2/FMA/F16C; its activation
quantizers write the same bytes and its dot products are checked against that variant's in
oracle_dot_kernels). Exactness checks therefore run llama.cpp pinned to PINNED, which every
machine of this project can run: build_llama_tools.sh makes .cache/llama-tools/pinned/<variant>/,
a folder holding the tools and that one library, so ggml can find no other. Agreement with the
variant llama.cpp itself picks on this CPU (`native_variant()`) is a separate check with its own
bound. OPTIQ_GGML_VARIANT=<variant> makes `native_variant()` return that variant instead, to
exercise the agreement checks with another CPU's arithmetic on a machine that picks haswell.

Run as a script, prints `machine_summary()`."""
from __future__ import annotations

import ctypes
import functools
import os
import platform
import subprocess
from pathlib import Path

CACHE = Path(os.environ.get("OPTIQ_CACHE", Path(__file__).resolve().parents[2] / ".cache"))
LLAMA_BIN = CACHE / "llama-tools"
GGML_BINS = CACHE / "node" / "node_modules" / "@node-llama-cpp" / "linux-x64" / "bins" / "linux-x64"
PINNED = "haswell"
# A second variant with other arithmetic (AVX without FMA) that every x86-64 machine of this
# project runs: llama.cpp's distance from itself between PINNED and this one measures how much a
# result moves under last-bit changes, which bounds comparisons of chaotic quantities.
NOISE_VARIANT = "sandybridge"
KLD_DONE = "Same top p:"  # the last line of llama-perplexity's KL divergence summary
ATTEMPTS = 20  # under load about 4 runs in 10 lose their last lines; 20 failing runs in a row: ~1e-8
# The /proc/cpuinfo flags that decide which variant ggml and OpenBLAS pick.
REPORTED_FLAGS = ["avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512_vnni",
                  "avx512_bf16", "avx512vbmi", "avx_vnni", "amx_tile"]


def cpu_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


@functools.cache
def variant_scores() -> dict[str, int]:
    """ggml_backend_score() of every CPU variant node-llama-cpp ships, as ggml computes it when
    it chooses one: {variant: score}, 0 for a variant this CPU cannot run."""
    ctypes.CDLL(str(GGML_BINS / "libggml-base.so"), mode=ctypes.RTLD_GLOBAL)
    scores = {}
    for lib in sorted(GGML_BINS.glob("libggml-cpu-*.so")):
        fn = ctypes.CDLL(str(lib)).ggml_backend_score
        fn.restype = ctypes.c_int
        scores[lib.stem.removeprefix("libggml-cpu-")] = fn()
    return scores


def native_variant() -> str:
    """The variant llama.cpp loads on this CPU (the highest score), or $OPTIQ_GGML_VARIANT."""
    chosen = os.environ.get("OPTIQ_GGML_VARIANT")
    scores = variant_scores()
    if chosen:
        if scores.get(chosen, 0) <= 0:
            raise SystemExit(f"OPTIQ_GGML_VARIANT={chosen}: this CPU cannot run it (runnable: {runnable_variants()})")
        return chosen
    return best_variant()


def best_variant() -> str:
    """The variant ggml loads from a folder holding all of them: the highest score."""
    scores = variant_scores()
    return max(scores, key=scores.get)


def runnable_variants() -> list[str]:
    return [v for v, s in sorted(variant_scores().items(), key=lambda kv: -kv[1]) if s > 0]


def openblas_core() -> str:
    """The OpenBLAS kernel family optiq's f32 matrix products run on this CPU (OpenBLAS also
    picks its kernels at run time: Haswell, Zen, SkylakeX, Cooperlake, ...)."""
    try:
        blas = ctypes.CDLL("libopenblas.so.0")
        blas.openblas_get_corename.restype = ctypes.c_char_p
        core = blas.openblas_get_corename().decode()
    except (OSError, AttributeError) as e:
        core = f"unknown ({e})"
    forced = os.environ.get("OPENBLAS_CORETYPE")
    return f"{core} (OPENBLAS_CORETYPE={forced})" if forced else core


def machine_summary() -> str:
    flags = cpu_flags()
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    native = native_variant()
    forced = " (forced by OPTIQ_GGML_VARIANT)" if os.environ.get("OPTIQ_GGML_VARIANT") else ""
    return (f"CPU: {model}; flags: {' '.join(f for f in REPORTED_FLAGS if f in flags)}\n"
            f"ggml CPU variant: exactness checks pinned to {PINNED}; llama.cpp's own choice here: {native}{forced} "
            f"(runnable: {', '.join(runnable_variants())})\n"
            f"optiq's OpenBLAS kernels: {openblas_core()}")


def tool_path(tool: str, variant: str | None = PINNED) -> Path:
    """The tool, in the folder where ggml finds only `variant`'s library, or in the folder with
    all of them (ggml's own choice) for variant=None."""
    exe = (LLAMA_BIN / "pinned" / variant if variant else LLAMA_BIN) / tool
    if not exe.exists():
        raise SystemExit(f"{exe} is missing; run scripts/build_llama_tools.sh")
    return exe


_announced: set[str | None] = set()  # the variants llama() has said it runs


def relative(a: list[float], b: list[float]) -> list[float]:
    """|a_i - b_i| / b_i, elementwise; [inf] for empty lists, so a missing result never passes."""
    return [abs(x - y) / y for x, y in zip(a, b)] or [float("inf")]


def llama(tool: str, *args: str | Path, done: str | None = None, variant: str | None = PINNED,
          env: dict[str, str] | None = None) -> str:
    """Runs a llama.cpp tool on `variant` (default: the pinned one); with `done`, until its
    output contains that text. llama.cpp's logger prints from a thread that the process does not
    wait for at exit (it leaks the logger on purpose, see common_log_main), so on a busy machine
    the last lines are sometimes lost. The first call prints machine_summary(), and each variant
    the first time it runs a line."""
    exe = tool_path(tool, variant)
    if not _announced:
        print(machine_summary())
    if variant not in _announced:
        _announced.add(variant)
        print(f"llama.cpp tools: ggml CPU variant {variant or best_variant() + ' (ggml picks)'}")
    run_env = {**os.environ, **(env or {})}
    for _ in range(ATTEMPTS):
        r = subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, env=run_env)
        if r.returncode != 0:
            raise AssertionError(f"{tool} ({variant or 'ggml picks'}) {' '.join(map(str, args))} failed "
                                 f"({r.returncode}): {r.stderr[-2000:]}")
        out = r.stdout + "\n" + r.stderr
        if done is None or done in out:
            return out
    raise AssertionError(f"{tool} {' '.join(map(str, args))}: {ATTEMPTS} runs, none printed '{done}':\n{out[-2000:]}")


if __name__ == "__main__":
    print(machine_summary())
