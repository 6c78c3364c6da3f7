"""oracle_serve_lora: LoRA adapters in `optiq serve`, on stories260K (completions, temperature 0).

Two generated PEFT adapters are mounted at start (one as its PEFT folder, one converted to
GGUF-LoRA by `optiq lora convert`), with --parallel 3 (batches stay under the F32 weights' sgemm
threshold, so a batch's rows are the arithmetic of a pass of their own). Checked:
- GET /lora-adapters and GET /v1/models list them (ids 0 and 1, "BASE+NAME" models);
- each text equals `optiq generate --lora` with the same adapter and scale: picked by "lora":
  [{"id", "scale"}] and by "model": "BASE+NAME";
- three requests with different adapters (base, a, b at scale 0.5) sent at once each equal
  their text alone (they share decode batches);
- the prompt cache leaks nothing: the base prompt right after an adapter's run gives the base
  text, and the reverse;
- POST /lora-adapters mounts a third adapter while a client keeps requesting: its requests
  work; DELETE /lora-adapters/NAME unmounts it, after which naming it is a 404 while the
  other adapters and the base keep answering, with no 5xx and no failed request throughout;
- bad requests get 4xx in the API's shape: unknown id (400), unknown name (404), malformed
  "lora" (400), a POST with a bad path (400) or a taken name (409), DELETE of an unknown name
  (404).
"""
from __future__ import annotations

import http.client
import json
import re
import threading
from pathlib import Path

from lora_util import make_peft
from oracle_util import STORIES, Failures, run_optiq, work_dir
from serve_util import start_serve, stop_serve

PROMPT = "Once upon a time, there was a little"
N = 24
CTX = 256

f = Failures()
work = work_dir("serve_lora")
peft_a, _ = make_peft(work / "a", 4, 8.0, 11, spread=0.1)
peft_b, _ = make_peft(work / "b", 4, 8.0, 12, spread=0.1)
peft_c, _ = make_peft(work / "c", 2, 4.0, 13, spread=0.1)
gguf_b = work / "b.gguf"
r = run_optiq("lora", "convert", peft_b, "--base", STORIES, "-o", gguf_b)
assert r.returncode == 0, r.stderr


def generate(*args) -> str:
    r = run_optiq("generate", STORIES, "-p", PROMPT, "-n", N, "-c", CTX, "-t", 1, *args)
    if r.returncode != 0:
        raise AssertionError(f"optiq generate {args} failed: {r.stderr}")
    return r.stdout[:-1]


def call(port: int, method: str, path: str, body=None) -> tuple[int, object]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request(method, path, body=None if body is None else json.dumps(body), headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    try:
        return resp.status, json.loads(data)
    except json.JSONDecodeError:
        return resp.status, data.decode(errors="replace")


def complete(port: int, **fields) -> tuple[int, object]:
    return call(port, "POST", "/v1/completions", {"model": "stories", "prompt": PROMPT, "max_tokens": N, "temperature": 0, **fields})


def text(port: int, **fields) -> str | None:
    status, out = complete(port, **fields)
    if not f.check(status == 200, f"completion {fields}: HTTP {status} {out}"):
        return None
    return out["choices"][0]["text"]


ref = {"base": generate(), "a": generate("--lora", peft_a), "b": generate("--lora", gguf_b),
       "b/2": generate("--lora", f"{gguf_b}:0.5"), "c": generate("--lora", peft_c)}
f.check(len(set(ref.values())) == len(ref), f"the adapters should change the greedy text: {ref}")

proc, port, log = start_serve(STORIES, "--alias", "stories", "-c", CTX, "--parallel", 3, "-t", 1,
                              "--lora", f"a={peft_a}", "--lora", f"b={gguf_b}")
try:
    status, listed = call(port, "GET", "/lora-adapters")
    f.check(status == 200 and [(x["id"], x["name"]) for x in listed] == [(0, "a"), (1, "b")], f"GET /lora-adapters: {listed}")
    status, models = call(port, "GET", "/v1/models")
    ids = [m["id"] for m in models.get("data", [])] if isinstance(models, dict) else []
    f.check(ids == ["stories", "stories+a", "stories+b"], f"/v1/models lists {ids}")

    f.check(text(port) == ref["base"], "base text differs from optiq generate's")
    f.check(text(port, lora=[{"id": 0}]) == ref["a"], "lora id 0 differs from optiq generate --lora a")
    f.check(text(port, model="stories+b") == ref["b"], "model stories+b differs from optiq generate --lora b.gguf")
    f.check(text(port, lora=[{"id": 1, "scale": 0.5}]) == ref["b/2"], "lora id 1 at 0.5 differs from generate's b.gguf:0.5")
    # The prompt cache holds the last prompt's rows: a different adapter set must not reuse them.
    f.check(text(port) == ref["base"], "base text after an adapter's run differs (prompt cache leak?)")
    f.check(text(port, model="stories+a") == ref["a"], "adapter text after a base run differs")

    # Three at once, each with its own adapters.
    got: dict[str, str | None] = {}
    def one(key: str, fields: dict) -> None:
        got[key] = text(port, **fields)
    threads = [threading.Thread(target=one, args=(k, v)) for k, v in
               (("base", {}), ("a", {"model": "stories+a"}), ("b/2", {"lora": [{"id": 1, "scale": 0.5}]}))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in ("base", "a", "b/2"):
        f.check(got.get(k) == ref[k], f"concurrent {k}: {got.get(k)!r} != {ref[k]!r}")

    # Mount and unmount while a client keeps sending requests.
    stop = threading.Event()
    statuses: list[int] = []
    def keep_sending() -> None:
        i = 0
        while not stop.is_set():
            status, _ = complete(port, **({"model": "stories+a"} if i % 2 else {}))
            statuses.append(status)
            i += 1
    load = threading.Thread(target=keep_sending)
    load.start()
    status, mounted = call(port, "POST", "/lora-adapters", {"name": "c", "path": str(peft_c)})
    f.check(status == 200 and mounted.get("id") == 2, f"POST /lora-adapters: {status} {mounted}")
    f.check(text(port, model="stories+c") == ref["c"], "the adapter mounted at run time differs from generate --lora c")
    status, out = call(port, "DELETE", "/lora-adapters/c")
    f.check(status == 200, f"DELETE /lora-adapters/c: {status} {out}")
    status, out = complete(port, model="stories+c")
    f.check(status == 404 and out.get("error", {}).get("code") == "model_not_found", f"unmounted c: {status} {out}")
    f.check(text(port, model="stories+b") == ref["b"], "b after c came and went differs")
    stop.set()
    load.join()
    f.check(len(statuses) >= 2 and all(s == 200 for s in statuses), f"requests during mount/unmount: {statuses}")

    # Bad requests.
    status, out = complete(port, lora=[{"id": 7}])
    f.check(status == 400 and out.get("error", {}).get("param") == "lora", f"unknown lora id: {status} {out}")
    status, out = complete(port, lora={"id": 0})
    f.check(status == 400, f"'lora' not a list: {status} {out}")
    status, out = complete(port, model="stories+nope")
    f.check(status == 404, f"unknown adapter name: {status} {out}")
    status, out = call(port, "POST", "/v1/messages", {"model": "stories+nope", "max_tokens": 4,
                                                      "messages": [{"role": "user", "content": "hi"}]})
    f.check(status in (400, 404) and isinstance(out, dict) and out.get("type") == "error", f"Anthropic shape: {status} {out}")
    status, out = call(port, "POST", "/lora-adapters", {"name": "d", "path": str(work / "missing")})
    f.check(status == 400, f"POST with a bad path: {status} {out}")
    status, out = call(port, "POST", "/lora-adapters", {"name": "a", "path": str(peft_c)})
    f.check(status == 409, f"POST with a taken name: {status} {out}")
    status, out = call(port, "DELETE", "/lora-adapters/nope")
    f.check(status == 404, f"DELETE of an unknown adapter: {status} {out}")
    f.check(text(port) == ref["base"], "the server still answers after the bad requests")
finally:
    code = stop_serve(proc)
f.check(code == 0, f"optiq serve exited with {code}")
served = [line for line in log if re.match(r"optiq serve: [A-Z]+ \S+ \d{3} ", line)]
f.check(len(served) > 20, f"only {len(served)} request lines in the server's log")
f.check(not any(re.match(r"optiq serve: [A-Z]+ \S+ 5\d\d ", line) for line in served),
        "a request got a 5xx:\n" + "".join(line for line in served if re.match(r"optiq serve: [A-Z]+ \S+ 5", line)))
f.finish("oracle_serve_lora")
