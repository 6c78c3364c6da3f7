"""Starting `optiq serve` for the oracles: on a free port (--port 0), its stderr drained into a
list that the caller can search (request log lines, the stop message); and stopping it."""
from __future__ import annotations

import re
import signal
import subprocess
import threading
import time

from oracle_util import OPTIQ


def start_serve(*args: str, timeout: float = 60) -> tuple[subprocess.Popen, int, list[str]]:
    """`optiq serve ARGS --port 0`, once it says where it listens: (process, port, log lines)."""
    proc = subprocess.Popen([OPTIQ, "serve", *map(str, args), "--port", "0"], stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    port = None
    deadline = time.time() + timeout
    while port is None and time.time() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if m := re.search(r"listening on http://127\.0\.0\.1:(\d+)", line):
            port = int(m.group(1))
    if port is None:
        proc.kill()
        raise SystemExit("optiq serve did not start:\n" + "".join(lines))

    def drain() -> None:
        for line in proc.stderr:
            lines.append(line)
    threading.Thread(target=drain, daemon=True).start()
    return proc, port, lines


def stop_serve(proc: subprocess.Popen) -> int | None:
    """SIGTERM, as a user's Ctrl-C; the exit code, or None when it had to be killed after 30 s."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        return None
