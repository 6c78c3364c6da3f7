"""oracle_calib_mix: the shipped calibration mix as `optiq calib-mix --dump` renders and
tokenizes it, checked against Python jinja2 in transformers' chat-template environment and
against Hugging Face `tokenizers`.

For Qwen2.5 (its tokenizer_config.json template, vocab.json + merges.txt built as transformers'
Qwen2 converter does) every sample must come out as the same text jinja2 renders from the
sample's messages and tools (raw text samples unchanged) and the same token ids HF encodes
(special tokens parsed; Qwen2.5 adds no BOS). For every template under
../shared/models/templates, each chat sample optiq rendered through the template as written
must equal jinja2's rendering byte for byte; a sample optiq rendered with string arguments
must make jinja2 raise on the original and match jinja2 on the string-argument form; and a
sample optiq flattened must make jinja2 raise on the original form wherever the template reads
tool_calls.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from hf_chat_env import ENV, FIXED_DATE, special_tokens  # noqa: E402
os.environ["OPTIQ_FIXED_DATE"] = FIXED_DATE
from check_tokenizers import qwen2_from_vocab_merges  # noqa: E402
from oracle_util import SHARED, Failures, run_optiq, work_dir  # noqa: E402

MIX = HERE.parent.parent / "data" / "calibration" / "optiq-mix.jsonl"
QWEN25 = SHARED / "models" / "qwen2.5-tokenizer"
TEMPLATES = SHARED / "models" / "templates"

fails = Failures()
work = work_dir("calib_mix")
samples = {}
for n, line in enumerate(MIX.read_text(encoding="utf-8").splitlines(), 1):
    if line.strip():
        samples[n] = json.loads(line)


def template_of(folder: Path) -> tuple[str, dict]:
    config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    stm = folder / "special_tokens_map.json"
    tokens = special_tokens(config, json.loads(stm.read_text(encoding="utf-8")) if stm.exists() else {})
    source_file = folder / "chat_template.json"
    source = json.loads(source_file.read_text(encoding="utf-8"))["chat_template"] if source_file.exists() \
        else config["chat_template"]
    return source, tokens


def jinja_render(source: str, tokens: dict, messages, tools) -> str | None:
    try:
        return ENV.from_string(source).render(messages=messages, tools=tools, documents=None,
                                              add_generation_prompt=False, **tokens)
    except Exception:  # noqa: BLE001 - any failure to render counts as "raises"
        return None


def string_arguments(messages):
    out = json.loads(json.dumps(messages))
    for m in out:
        for call in m.get("tool_calls") or []:
            args = call["function"]["arguments"]
            if not isinstance(args, str):
                call["function"]["arguments"] = json.dumps(args, ensure_ascii=False, separators=(",", ":"))
    return out


def optiq_dump(model: Path, name: str) -> list[dict]:
    out = work / f"{name}.jsonl"
    r = run_optiq("calib-mix", model, "--calibration-mix", MIX, "--dump", out)
    if r.returncode != 0:
        raise AssertionError(f"optiq calib-mix {model} failed ({r.returncode}): {r.stderr}")
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def with_qwen_vocab(name: str, folder: Path) -> tuple[Path, str, dict]:
    """The template folders carry no usable tokenizer: a scratch model folder with the template
    (chat_template.json) and its special tokens (special_tokens_map.json) over Qwen2.5's
    vocabulary. Rendering does not depend on the vocabulary."""
    source, own_tokens = template_of(folder)
    qwen_config = json.loads((QWEN25 / "tokenizer_config.json").read_text(encoding="utf-8"))
    del qwen_config["chat_template"]
    out = work / f"model-{name}"
    out.mkdir()
    for f in ["vocab.json", "merges.txt"]:
        shutil.copy(QWEN25 / f, out / f)
    (out / "tokenizer_config.json").write_text(json.dumps(qwen_config), encoding="utf-8")
    (out / "special_tokens_map.json").write_text(json.dumps(own_tokens), encoding="utf-8")
    (out / "chat_template.json").write_text(json.dumps({"chat_template": source}), encoding="utf-8")
    return out, source, special_tokens(qwen_config, own_tokens)


def check_renders(name: str, model: Path, source: str, tokens: dict) -> dict:
    modes: dict = {}
    for d in optiq_dump(model, name):
        s = samples[d["line"]]
        label = f"{name} line {d['line']} ({d['mode']})"
        modes[d["mode"]] = modes.get(d["mode"], 0) + 1
        if "text" in s:
            fails.check(d["mode"] == "text" and d["text"] == s["text"], f"{label}: raw text changed")
            continue
        original = jinja_render(source, tokens, s["messages"], s.get("tools"))
        if d["mode"] == "template":
            fails.check(original == d["text"],
                        f"{label}: differs from jinja2\n  jinja2: {original!r:.300}\n  optiq:  {d['text']!r:.300}")
        elif d["mode"] == "template, string arguments":
            fails.check(original is None, f"{label}: jinja2 renders the original form, optiq did not use it")
            expected = jinja_render(source, tokens, string_arguments(s["messages"]), s.get("tools"))
            fails.check(expected == d["text"], f"{label}: differs from jinja2 on the string-argument form")
        elif "tool_calls" in source:
            fails.check(original is None, f"{label}: jinja2 renders the original form, optiq did not use it")
    return modes


# Qwen2.5: text and token ids.
hf = qwen2_from_vocab_merges(QWEN25)
modes = check_renders("qwen2.5", QWEN25, *template_of(QWEN25))
fails.check(modes.get("template", 0) + modes.get("text", 0) == len(samples), f"qwen2.5 modes: {modes}")
total_optiq = total_hf = 0
for d in optiq_dump(QWEN25, "qwen2.5-ids"):
    ids = hf.encode(d["text"], add_special_tokens=True).ids
    total_optiq += len(d["tokens"])
    total_hf += len(ids)
    fails.check(ids == d["tokens"], f"qwen2.5 line {d['line']}: token ids differ from HF tokenizers "
                                    f"({len(d['tokens'])} vs {len(ids)} tokens)")
fails.check(total_hf >= 30000, f"the mix has {total_hf} Qwen2.5 tokens, fewer than 30000")
print(f"oracle_calib_mix: qwen2.5 {len(samples)} samples, {total_optiq} tokens (HF tokenizers: {total_hf})")

for folder in sorted(p for p in TEMPLATES.iterdir() if p.is_dir()):
    modes = check_renders(folder.name, *with_qwen_vocab(folder.name, folder))
    print(f"oracle_calib_mix: {folder.name}: " + ", ".join(f"{k}: {v}" for k, v in sorted(modes.items())))

fails.finish("oracle_calib_mix")
