"""`optiq imatrix` and importance-matrix files against llama.cpp's tools (llama-imatrix and
llama-quantize from scripts/build_llama_tools.sh, linked against node-llama-cpp's libllama):
- on stories260K and tests/fixtures/imatrix_calibration.txt with 128-token chunks, optiq's
  in_sum2 agree with llama-imatrix's (run with an f32 KV cache and no flash attention, i.e. the
  same arithmetic) within 1e-4 relative, the counts and imatrix.* keys are identical; against
  llama-imatrix's defaults (f16 KV cache) the agreement is reported and bounded more loosely;
  the same 1e-4 bound holds on random qwen2, qwen3 and gemma3 models;
- llama-imatrix reads optiq's .gguf and .dat (--in-file) and writes back the same statistics,
  and its .dat written from optiq's .gguf is byte-identical to optiq's own .dat;
- llama-quantize --imatrix F and optiq quantize --imatrix F give byte-identical tensors, for F
  from either tool in either form, with imatrix-using types (Q4_K_M, IQ4_XS, Q4_0)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import gguf
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from oracle_util import STORIES, Failures, run_optiq, work_dir  # noqa: E402
from llama_tools import machine_summary, tool_path  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TEXT = Path(__file__).resolve().parents[1] / "fixtures" / "imatrix_calibration.txt"
CTX = "128"
SAME_ARITHMETIC = ["-ctk", "f32", "-ctv", "f32", "-fa", "off"]


def llama_tools() -> Path:
    """llama.cpp's tools built against node-llama-cpp's prebuilt libraries (idempotent), in the
    folder pinned to the ggml CPU variant optiq reproduces (llama_tools.py)."""
    r = subprocess.run(["bash", str(ROOT / "scripts" / "build_llama_tools.sh")], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"oracle_imatrix: scripts/build_llama_tools.sh failed: {r.stderr[-2000:]}")
    return tool_path("llama-imatrix").parent


BIN = llama_tools()
print(machine_summary())


def run(cmd: list, what: str) -> str:
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError(f"{what} failed ({r.returncode}): {r.stderr[-3000:]}")
    return r.stdout


def llama_imatrix(*args) -> None:
    run([BIN / "llama-imatrix", "-t", "2", "-c", CTX, *args], "llama-imatrix " + " ".join(map(str, args)))


def load(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    r = gguf.GGUFReader(path)
    data = {t.name: np.asarray(t.data, dtype=np.float32).reshape(-1).copy() for t in r.tensors}
    keys = {k: f.contents() for k, f in r.fields.items() if k.startswith("imatrix.") or k == "general.type"}
    return data, keys


def max_rel(a: dict, b: dict) -> float:
    worst = 0.0
    for name, y in b.items():
        if name.endswith(".in_sum2") and name in a:
            x = a[name].astype(np.float64)
            worst = max(worst, float(np.max(np.abs(x - y) / np.maximum(np.abs(y), 1e-30))))
    return worst


def compare_stats(f: Failures, ours: Path, ref: Path, what: str, bound: float, keys: bool = True) -> float:
    a, ka = load(ours)
    b, kb = load(ref)
    f.check(sorted(a) == sorted(b), f"{what}: entries differ: {sorted(set(a) ^ set(b))[:6]}")
    for name in b:
        if name.endswith(".counts") and name in a:
            f.check(np.array_equal(a[name], b[name]), f"{what}: {name}: optiq {a[name]}, llama.cpp {b[name]}")
    if keys:
        f.check(ka == kb, f"{what}: metadata optiq {ka}, llama.cpp {kb}")
    rel = max_rel(a, b)
    f.check(rel <= bound, f"{what}: in_sum2 differ by up to {rel:.3g} relative (bound {bound:g})")
    return rel


def same_tensors(f: Failures, ours: Path, ref: Path, what: str) -> int:
    a = {t.name: t for t in gguf.GGUFReader(ours).tensors}
    b = {t.name: t for t in gguf.GGUFReader(ref).tensors}
    f.check(list(a) == list(b), f"{what}: tensor lists differ")
    same = 0
    for name, t in b.items():
        o = a.get(name)
        ok = (o is not None and o.tensor_type == t.tensor_type
              and np.asarray(o.data).tobytes() == np.asarray(t.data).tobytes())
        same += ok
        f.check(ok, f"{what}: {name}: type or bytes differ")
    return same


def main() -> None:
    d = work_dir("imatrix")
    f = Failures()
    text = str(TEXT)

    # optiq's statistics against llama-imatrix's.
    r = run_optiq("imatrix", STORIES, "-f", text, "-o", d / "optiq.gguf", "-c", CTX, "-t", "2")
    f.check(r.returncode == 0, f"optiq imatrix: {r.stderr}")
    r = run_optiq("imatrix", STORIES, "-f", text, "-o", d / "optiq.dat", "-c", CTX, "-t", "1")
    f.check(r.returncode == 0, f"optiq imatrix .dat: {r.stderr}")
    llama_imatrix("-m", STORIES, "-f", text, "-o", d / "llama.gguf", "--no-ppl", *SAME_ARITHMETIC)
    llama_imatrix("-m", STORIES, "-f", text, "-o", d / "llama-f16kv.gguf", "--no-ppl")
    llama_imatrix("-m", STORIES, "-f", text, "-o", d / "llama.dat", "--no-ppl", "--output-format", "dat",
                  *SAME_ARITHMETIC)
    rel = compare_stats(f, d / "optiq.gguf", d / "llama.gguf", "optiq vs llama-imatrix (f32 KV)", 1e-4)
    rel_f16 = compare_stats(f, d / "optiq.gguf", d / "llama-f16kv.gguf", "optiq vs llama-imatrix (f16 KV)", 5e-3)

    # The other architectures the engine runs: random qwen2/qwen3/gemma3 models (make_hf_model.py,
    # matrices at 8x spread as in oracle_engine_archs) with stories260K's tokenizer grafted on.
    arch_rel = {}
    for variant in ("qwen2", "qwen3", "gemma3"):
        hf_dir, raw, model = d / f"hf-{variant}", d / f"raw-{variant}.gguf", d / f"{variant}.gguf"
        run([sys.executable, HERE / "make_hf_model.py", variant, hf_dir, "512", "8"], f"make_hf_model {variant}")
        r = run_optiq("convert", hf_dir, "-o", raw, "--outtype", "f32")
        f.check(r.returncode == 0, f"optiq convert {variant}: {r.stderr}")
        run([sys.executable, HERE / "graft_tokenizer.py", raw, STORIES, model], f"graft_tokenizer {variant}")
        r = run_optiq("imatrix", model, "-f", text, "-o", d / f"{variant}.optiq.gguf", "-c", CTX, "-t", "2")
        if not f.check(r.returncode == 0, f"optiq imatrix {variant}: {r.stderr}"):
            continue
        llama_imatrix("-m", model, "-f", text, "-o", d / f"{variant}.llama.gguf", "--no-ppl", *SAME_ARITHMETIC)
        arch_rel[variant] = compare_stats(f, d / f"{variant}.optiq.gguf", d / f"{variant}.llama.gguf",
                                          f"{variant}: optiq vs llama-imatrix", 1e-4, keys=False)

    # llama-imatrix reads optiq's files.
    llama_imatrix("-m", STORIES, "--in-file", d / "optiq.gguf", "-o", d / "reread.gguf")
    compare_stats(f, d / "reread.gguf", d / "optiq.gguf", "llama-imatrix --in-file optiq.gguf", 0.0)
    llama_imatrix("-m", STORIES, "--in-file", d / "optiq.dat", "-o", d / "reread-dat.gguf")
    compare_stats(f, d / "reread-dat.gguf", d / "optiq.gguf", "llama-imatrix --in-file optiq.dat", 1e-5,
                  keys=False)
    llama_imatrix("-m", STORIES, "--in-file", d / "optiq.gguf", "--output-format", "dat", "-o", d / "llama-from-optiq.dat")
    f.check((d / "llama-from-optiq.dat").read_bytes() == (d / "optiq.dat").read_bytes(),
            "llama-imatrix's .dat of optiq.gguf differs from optiq's own .dat")

    # Both quantizers with the same importance matrix, from either tool, in either form.
    n_same = 0
    for im in ("llama.gguf", "llama.dat", "optiq.gguf", "optiq.dat"):
        for mix in ("Q4_K_M", "IQ4_XS", "Q4_0"):
            tag = f"{im}-{mix}"
            r = run_optiq("quantize", STORIES, "-o", d / f"{tag}.optiq.gguf", "--type", mix, "--imatrix", d / im)
            if not f.check(r.returncode == 0, f"optiq quantize --imatrix {im} {mix}: {r.stderr}"):
                continue
            f.check("(imatrix)" in r.stdout, f"optiq quantize --imatrix {im}: no tensor used the imatrix")
            run([BIN / "llama-quantize", "--imatrix", d / im, STORIES, d / f"{tag}.llama.gguf", mix, "2"],
                f"llama-quantize --imatrix {im} {mix}")
            n_same += same_tensors(f, d / f"{tag}.optiq.gguf", d / f"{tag}.llama.gguf", tag)
            # Including the quantize.imatrix.* keys both add.
            f.check((d / f"{tag}.optiq.gguf").read_bytes() == (d / f"{tag}.llama.gguf").read_bytes(),
                    f"{tag}: the files differ (metadata or layout)")
    # Without the imatrix the bytes differ: the check above really exercised it.
    run_optiq("quantize", STORIES, "-o", d / "plain.gguf", "--type", "IQ4_XS")
    a = {t.name: np.asarray(t.data).tobytes() for t in gguf.GGUFReader(d / "plain.gguf").tensors}
    b = {t.name: np.asarray(t.data).tobytes() for t in gguf.GGUFReader(d / "optiq.gguf-IQ4_XS.optiq.gguf").tensors}
    f.check(a["blk.0.attn_q.weight"] != b["blk.0.attn_q.weight"], "the imatrix did not change blk.0.attn_q.weight")

    print(f"oracle_imatrix: in_sum2 max relative difference {rel:.3g} (f32 KV), {rel_f16:.3g} "
          f"(llama-imatrix defaults, f16 KV); other architectures (f32 KV): "
          f"{', '.join(f'{k} {v:.3g}' for k, v in arch_rel.items())}; "
          f"{n_same} quantized tensors byte-identical with llama-quantize")
    f.finish("oracle_imatrix")


if __name__ == "__main__":
    main()
