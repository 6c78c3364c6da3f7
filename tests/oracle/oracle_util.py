"""Shared plumbing for the Python oracle tests: the environment CTest passes, running optiq,
and a failure collector so that one run reports every disagreement, not just the first."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

OPTIQ = os.environ["OPTIQ"]
SHARED = Path(os.environ["OPTIQ_SHARED"])
STORIES = SHARED / "models" / "stories260K" / "stories260K.gguf"


def work_dir(test: str) -> Path:
    """A fresh scratch folder for one test under $OPTIQ_WORK (the only place tests write)."""
    d = Path(os.environ["OPTIQ_WORK"]) / test
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    return d


def run_optiq(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([OPTIQ, *map(str, args)], capture_output=True, text=True)


def convert(src: Path, out: Path, outtype: str) -> Path:
    r = run_optiq("convert", src, "-o", out, "--outtype", outtype)
    if r.returncode != 0:
        raise AssertionError(f"optiq convert {src} --outtype {outtype} failed ({r.returncode}): {r.stderr}")
    return out


def info_json(path: Path) -> dict:
    r = run_optiq("info", path, "--json", "--metadata")
    if r.returncode != 0:
        raise AssertionError(f"optiq info {path} failed ({r.returncode}): {r.stderr}")
    return json.loads(r.stdout)


class Failures:
    """Collects failed checks; `check` records instead of raising so a report is complete."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.n_checks = 0

    def check(self, ok: bool, what: str) -> bool:
        self.n_checks += 1
        if not ok:
            self.items.append(what)
        return ok

    def finish(self, name: str) -> None:
        if self.items:
            shown = self.items[:60]
            print(f"{name}: {len(self.items)} of {self.n_checks} checks FAILED:", file=sys.stderr)
            for f in shown:
                print("  - " + f, file=sys.stderr)
            if len(self.items) > len(shown):
                print(f"  ... and {len(self.items) - len(shown)} more", file=sys.stderr)
            sys.exit(1)
        if self.n_checks == 0:
            print(f"{name}: no checks ran", file=sys.stderr)
            sys.exit(1)
        print(f"{name}: all {self.n_checks} checks passed")
