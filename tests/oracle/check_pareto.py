"""oracle_pareto: what `optiq pareto` measures and writes, checked by llama.cpp, gguf-py and Python.

After a small `optiq convert` of stories260K, `optiq pareto` sweeps two optiq targets, two
llama.cpp recipes and one uniform type on its held-out text. Then:
- the held-out text is byte for byte what bench/convert_results.py writes;
- llama-perplexity computes the reference's perplexity on that text as pareto reports it;
- llama-perplexity loads every file and its KL divergence against pareto's own reference.kld
  (llama.cpp's base-file format) and its PPL(Q) agree with pareto.json;
- gguf-py reads every file, whose tensor bytes are pareto.json's;
- pareto.svg is well-formed XML with one marker per point."""
from __future__ import annotations

import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import gguf

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import convert_results  # noqa: E402
from llama_tools import KLD_DONE, llama  # noqa: E402
from oracle_util import SHARED, STORIES, Failures, run_optiq, work_dir  # noqa: E402

f = Failures()
work = work_dir("oracle_pareto")


def number(pattern: str, out: str) -> float:
    m = re.search(pattern, out)
    assert m, f"no '{pattern}' in:\n" + out[-2000:]
    return float(m.group(1))


r = run_optiq("convert", STORIES, "-o", work / "convert", "--n-calibration", "3", "--seq-len", "64", "-t", "1")
assert r.returncode == 0, f"optiq convert failed: {r.stdout[-2000:]} {r.stderr[-2000:]}"
out = work / "pareto"
r = run_optiq("pareto", STORIES, "-o", out, "--sensitivity-from", work / "convert", "--bpw", "8,9", "--recipes",
              "Q4_K_M,Q8_0", "--uniform", "Q4_0", "-c", "128", "--chunks", "4", "-t", "1")
assert r.returncode == 0, f"optiq pareto failed: {r.stdout[-2000:]} {r.stderr[-2000:]}"
result = json.loads((out / "pareto.json").read_text())

expected_text = work / "convert_results-held-out.txt"
convert_results.SHARED = SHARED
convert_results.held_out_text(expected_text)
f.check((out / "held-out.txt").read_bytes() == expected_text.read_bytes(),
        "held-out.txt differs from bench/convert_results.py's text")

flags = ["-c", "128", "--chunks", "4", "-t", "1", "-b", "128"]
ref_ppl = number(r"Final estimate: PPL = ([0-9.]+)",
                 llama("llama-perplexity", "-m", STORIES, "-f", out / "held-out.txt", *flags, done="Final estimate"))
f.check(abs(ref_ppl - result["reference_ppl"]) <= 1e-3 * ref_ppl,
        f"reference PPL: llama-perplexity {ref_ppl}, pareto {result['reference_ppl']}")
print(f"reference PPL: llama-perplexity {ref_ppl:.4f}, pareto {result['reference_ppl']:.4f}")

f.check(len(result["points"]) == 5, f"{len(result['points'])} points, expected 5")
for p in result["points"]:
    path = out / p["file"]
    data_bytes = sum(int(t.n_bytes) for t in gguf.GGUFReader(path).tensors)
    f.check(data_bytes == p["bytes"], f"{p['label']}: gguf-py counts {data_bytes} tensor bytes, pareto.json {p['bytes']}")
    theirs = llama("llama-perplexity", "-m", path, *flags, "--kl-divergence", "--kl-divergence-base", out / "reference.kld",
                   done=KLD_DONE)
    kld = number(r"Mean\s+KLD:\s+([0-9.eE+-]+)", theirs)
    ppl = number(r"Mean PPL\(Q\)\s*:\s*([0-9.]+)", theirs)
    print(f"{p['label']:14s} KLD llama.cpp {kld:.6f} optiq {p['kld']:.6f}   PPL llama.cpp {ppl:.4f} optiq {p['ppl']:.4f}")
    # As in oracle_convert: the engines' activation rounding differs by up to ~4e-4 of KL.
    f.check(abs(kld - p["kld"]) <= max(0.05 * kld, 5e-4), f"{p['label']}: KLD llama.cpp {kld} vs pareto {p['kld']}")
    f.check(abs(ppl - p["ppl"]) <= 0.01 * ppl, f"{p['label']}: PPL(Q) llama.cpp {ppl} vs pareto {p['ppl']}")

svg = ET.parse(out / "pareto.svg").getroot()
circles = svg.findall("{http://www.w3.org/2000/svg}circle")
f.check(len(circles) == 5 + 3, f"pareto.svg has {len(circles)} markers, expected 5 points and 3 legend entries")
f.finish("oracle_pareto")
