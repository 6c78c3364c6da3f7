"""Running the llama.cpp tools scripts/build_llama_tools.sh compiles into .cache/llama-tools."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

LLAMA_BIN = Path(os.environ.get("OPTIQ_CACHE", Path(__file__).resolve().parents[2] / ".cache")) / "llama-tools"
KLD_DONE = "Same top p:"  # the last line of llama-perplexity's KL divergence summary
ATTEMPTS = 20  # under load about 4 runs in 10 lose their last lines; 20 failing runs in a row: ~1e-8


def llama(tool: str, *args: str | Path, done: str | None = None) -> str:
    """Runs a llama.cpp tool; with `done`, until its output contains that text. llama.cpp's
    logger prints from a thread that the process does not wait for at exit (it leaks the logger
    on purpose, see common_log_main), so on a busy machine the last lines are sometimes lost."""
    exe = LLAMA_BIN / tool
    if not exe.exists():
        raise SystemExit(f"{exe} is missing; run scripts/build_llama_tools.sh")
    for _ in range(ATTEMPTS):
        r = subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True)
        if r.returncode != 0:
            raise AssertionError(f"{tool} {' '.join(map(str, args))} failed ({r.returncode}): {r.stderr[-2000:]}")
        out = r.stdout + "\n" + r.stderr
        if done is None or done in out:
            return out
    raise AssertionError(f"{tool} {' '.join(map(str, args))}: {ATTEMPTS} runs, none printed '{done}':\n{out[-2000:]}")
