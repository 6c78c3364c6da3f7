"""oracle_serve_prompt_tokens: the tokens `optiq serve` feeds its model for a chat request equal
llama-server's for the same GGUF and conversation.

optiq's side: the server's /apply-template (the prompt text) and /tokenize with add_special (how
the server tokenizes a prompt). llama.cpp's side: llama-chat-tokens (tests/tools/, built by
scripts/build_llama_tools.sh against node-llama-cpp's prebuilt libllama-common), which runs the
code behind llama-server's /apply-template (common_chat_templates_apply, jinja) and tokenizes
the result as its completion path does.

Cases: every conversation of conversations.json, on SmolLM2-135M-Instruct with its own template,
on Gemma-3-270M (a base model without a template) with gemma-3-it's, and on stories260K with
every template of ../shared/models/templates as --chat-template-file (the template's
special-token strings are plain text to that vocabulary, and both tokenizers must agree on
them). A conversation that one side refuses (a template that raises) must be refused by the
other too. Conversations with tool calls, and the tools themselves, are compared only on
templates that render them natively: for the others both servers describe tools in their own
words (see src/serve/tool_prompt.h). Two differences are deliberate, and skipped (EXPECTED):
  - Phi-4-mini's template reads the tools from the system message's `tools` field; optiq puts
    them there, llama.cpp's server leaves them out, so its prompt shows the model no tools;
  - DeepSeek R1's template writes an assistant's tool calls only when its content is None;
    llama.cpp's server first turns a None content into "" for templates that support calls,
    so the calls vanish from its prompt; optiq keeps None and the calls are rendered.
(A model without any template: llama.cpp's server falls back to ChatML, optiq serve answers
chat requests with a 400 that asks for --chat-template-file.)"""
from __future__ import annotations

import http.client
import json
import os
import subprocess
from pathlib import Path

from oracle_util import SHARED, STORIES, Failures, work_dir
from serve_util import start_serve, stop_serve

CACHE = Path(os.environ["OPTIQ_CACHE"])
BRIDGE = CACHE / "llama-tools" / "llama-chat-tokens"
TEMPLATES = SHARED / "models" / "templates"
DATA = json.loads((Path(__file__).resolve().parent / "conversations.json").read_text(encoding="utf-8"))

f = Failures()
work = work_dir("serve_prompt_tokens")


def post(port: int, path: str, body: dict) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = json.loads(resp.read().decode())
    conn.close()
    return resp.status, data


def optiq_tokens(port: int, request: dict) -> list[int] | None:
    status, data = post(port, "/apply-template", request)
    if status != 200:
        return None
    status, data = post(port, "/tokenize", {"content": data["prompt"], "add_special": True})
    assert status == 200, data
    return data["tokens"]


def llama_tokens(model: Path, template: Path | None, request: dict) -> list[int] | None:
    req = work / "request.json"
    req.write_text(json.dumps(request, ensure_ascii=False), encoding="utf-8")
    r = subprocess.run([str(BRIDGE), str(model), str(template) if template else "-", str(req)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return None
    return [int(x) for x in r.stdout.split()]


def template_files() -> list[tuple[str, Path]]:
    out = []
    for folder in sorted(p for p in TEMPLATES.iterdir() if p.is_dir()):
        source = None
        for name in ("chat_template.json", "tokenizer_config.json"):
            if (folder / name).exists():
                source = json.loads((folder / name).read_text(encoding="utf-8")).get("chat_template") or source
        if isinstance(source, str):
            path = work / f"{folder.name}.jinja"
            path.write_text(source, encoding="utf-8")
            out.append((folder.name, path))
    return out


# (template folder, conversation, with tools) pairs whose difference is deliberate (see above).
EXPECTED = {("phi-4-mini-instruct", "single_user", True), ("deepseek-r1-distill-qwen-1.5b", "tool_call_object_args", False),
            ("deepseek-r1-distill-qwen-1.5b", "tool_call_string_args", False)}


def compare(label: str, model: Path, template: Path | None, source: str) -> tuple[int, int]:
    """All conversations on one served model; returns (cases, refused by both)."""
    args = [model, "-c", 2048, "-t", 1] + (["--chat-template-file", template] if template else [])
    proc, port, _ = start_serve(*args)
    native_tools = "tools" in source
    native_calls = "tool_calls" in source
    n = refused = 0
    try:
        for name, messages in DATA["conversations"].items():
            if any("tool_calls" in m or m.get("role") == "tool" for m in messages) and not native_calls:
                continue
            for with_tools in [False, True] if name in DATA["with_tools"] and native_tools else [False]:
                if template and (template.stem, name, with_tools) in EXPECTED:
                    continue
                request = {"messages": messages}
                if with_tools:
                    request["tools"] = DATA["tools"]
                ours, theirs = optiq_tokens(port, request), llama_tokens(model, template, request)
                n += 1
                case = f"{label} / {name}{' +tools' if with_tools else ''}"
                if ours is None and theirs is None:
                    refused += 1
                    continue
                if ours != theirs:
                    at = next((i for i, (a, b) in enumerate(zip(ours or [], theirs or [])) if a != b),
                              min(len(ours or []), len(theirs or [])))
                    f.check(False, f"{case}: optiq {'refused' if ours is None else f'{len(ours)} tokens'}, llama.cpp "
                                   f"{'refused' if theirs is None else f'{len(theirs)} tokens'}; first difference at {at}: "
                                   f"{(ours or [])[at:at + 8]} vs {(theirs or [])[at:at + 8]}")
                else:
                    f.check(True, case)
    finally:
        stop_serve(proc)
    return n, refused


f.check(BRIDGE.exists(), f"{BRIDGE} is missing (scripts/build_llama_tools.sh)")
total = both_refused = 0
templates = dict(template_files())
for model_name, folder in (("smollm2-135m-instruct-q4_1.gguf", None), ("gemma-3-270m-q4_k_m.gguf", "gemma-3-it")):
    model = CACHE / "models" / model_name
    if not model.exists():
        f.check(False, f"{model} is missing (scripts/fetch_models.sh)")
        continue
    if folder:
        template = templates[folder]
        source = template.read_text(encoding="utf-8")
    else:
        template = None
        info = subprocess.run([os.environ["OPTIQ"], "info", "--json", "--metadata", str(model)], capture_output=True, text=True)
        meta = json.loads(info.stdout)["metadata"] if info.returncode == 0 else {}
        source = meta.get("tokenizer.chat_template", {}).get("value", "")
    n, r = compare(model_name + (f" + {folder}" if folder else ""), model, template, source)
    total, both_refused = total + n, both_refused + r
for folder, template in templates.items():
    n, r = compare(f"stories260K + {folder}", STORIES, template, template.read_text(encoding="utf-8"))
    total, both_refused = total + n, both_refused + r
print(f"{total} conversations compared, {both_refused} refused by both")
f.finish("oracle_serve_prompt_tokens")
