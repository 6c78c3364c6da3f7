"""oracle_chat_templates: `optiq template` must render every chat template in
../shared/models/templates (and Qwen2.5's) byte for byte as Python jinja2 does in the
environment Hugging Face transformers renders chat templates in.

The reference environment is rebuilt here from transformers' chat template utilities:
an ImmutableSandboxedEnvironment with trim_blocks, lstrip_blocks and the loopcontrols
extension; a `tojson` filter that is json.dumps with ensure_ascii=False and the
indent/separators/sort_keys arguments; the globals raise_exception and strftime_now; and the
render variables messages, tools (None without tools), documents (None),
add_generation_prompt, the tokenizer's special_tokens_map (tokenizer_config.json overridden
by special_tokens_map.json; a token may be a string or an AddedToken dict) and the extra
variables (enable_thinking). strftime_now reads a fixed date on both sides (OPTIQ_FIXED_DATE).

Cases: every template x every conversation in conversations.json x add_generation_prompt
on/off x (for templates that read enable_thinking) thinking unset/on/off; conversations in
"with_tools" are also rendered with the tools. A case matches when both outputs are the same
bytes, or when both sides raise (Mistral's and Gemma's strict role alternation). Also one
template read from a GGUF's tokenizer.chat_template and one given with --template-file.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from oracle_util import OPTIQ, SHARED, Failures, work_dir  # noqa: E402
from hf_chat_env import ENV, FIXED_DATE, special_tokens, token_text  # noqa: E402

os.environ["OPTIQ_FIXED_DATE"] = FIXED_DATE
TEMPLATES = SHARED / "models" / "templates"
DATA = json.loads((Path(__file__).resolve().parent / "conversations.json").read_text(encoding="utf-8"))

fails = Failures()
work = work_dir("chat_templates")


def hf_folder_case(name: str, folder: Path, template_file: str) -> dict:
    config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    stm = folder / "special_tokens_map.json"
    tokens = special_tokens(config, json.loads(stm.read_text(encoding="utf-8")) if stm.exists() else {})
    source = json.loads((folder / template_file).read_text(encoding="utf-8"))["chat_template"]
    return {"name": name, "args": [str(folder)], "template": source, "tokens": tokens}


def cases() -> list[dict]:
    out = []
    for folder in sorted(p for p in TEMPLATES.iterdir() if p.is_dir()):
        if folder.name == "gemma-3-it":
            # The folder renders chat_template.json (it wins over tokenizer_config.json); a copy
            # of tokenizer_config.json alone covers the embedded template.
            out.append(hf_folder_case("gemma-3-it/chat_template.json", folder, "chat_template.json"))
            alone = work / "gemma-3-it-tokenizer-config"
            alone.mkdir()
            shutil.copy(folder / "tokenizer_config.json", alone)
            case = hf_folder_case("gemma-3-it/tokenizer_config.json", alone, "tokenizer_config.json")
            out.append(case)
        else:
            out.append(hf_folder_case(folder.name, folder, "tokenizer_config.json"))
    out.append(hf_folder_case("qwen2.5", SHARED / "models" / "qwen2.5-tokenizer", "tokenizer_config.json"))
    out.append(gguf_case())
    out.append(template_file_case())
    return out


def gguf_case() -> dict:
    import gguf

    src = json.loads((TEMPLATES / "deepseek-r1-distill-qwen-1.5b" / "tokenizer_config.json").read_text(encoding="utf-8"))
    bos, eos = token_text(src["bos_token"]), token_text(src["eos_token"])
    path = work / "deepseek-template.gguf"
    w = gguf.GGUFWriter(str(path), "qwen2")
    w.add_tokenizer_model("gpt2")
    w.add_token_list(["a", bos, "b", eos])
    w.add_bos_token_id(1)
    w.add_eos_token_id(3)
    w.add_chat_template(src["chat_template"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return {"name": "deepseek via GGUF", "args": [str(path)], "template": src["chat_template"],
            "tokens": {"bos_token": bos, "eos_token": eos}}


def template_file_case() -> dict:
    src = json.loads((TEMPLATES / "llama-3.2-instruct" / "tokenizer_config.json").read_text(encoding="utf-8"))
    path = work / "llama.jinja"
    path.write_text(src["chat_template"], encoding="utf-8")
    return {"name": "llama via --template-file", "args": ["--template-file", str(path), "--var", "bos_token=<BOS>"],
            "template": src["chat_template"], "tokens": {"bos_token": "<BOS>"}}


def python_render(case: dict, messages, tools, agp: bool, extra: dict) -> str | None:
    try:
        tmpl = ENV.from_string(case["template"])
        return tmpl.render(messages=messages, tools=tools, documents=None, add_generation_prompt=agp,
                           **{**case["tokens"], **extra})
    except Exception:  # noqa: BLE001 - any failure to render counts as "raises"
        return None


def run_optiq_bytes(*args) -> subprocess.CompletedProcess:
    # Bytes, not text: universal-newline decoding would hide a \r the template must keep.
    return subprocess.run([OPTIQ, *map(str, args)], capture_output=True)


n_cases = n_raise = 0
for case in cases():
    thinking_options = [None, True, False] if "enable_thinking" in case["template"] else [None]
    for conv_name, messages in DATA["conversations"].items():
        msg_file = work / f"{conv_name}.messages.json"
        msg_file.write_text(json.dumps(messages, ensure_ascii=False), encoding="utf-8")
        tool_file = work / "tools.json"
        tool_file.write_text(json.dumps(DATA["tools"], ensure_ascii=False), encoding="utf-8")
        for with_tools in [False, True] if conv_name in DATA["with_tools"] else [False]:
            for agp in [False, True]:
                for thinking in thinking_options:
                    extra = {} if thinking is None else {"enable_thinking": thinking}
                    args = ["template", *case["args"], "--messages", msg_file]
                    if with_tools:
                        args += ["--tools", tool_file]
                    if agp:
                        args.append("--add-generation-prompt")
                    if thinking is not None:
                        args += ["--var", f"enable_thinking={'true' if thinking else 'false'}"]
                    label = (f"{case['name']} / {conv_name}{' +tools' if with_tools else ''}"
                             f"{' +gen' if agp else ''}{'' if thinking is None else f' thinking={thinking}'}")
                    expected = python_render(case, messages, DATA["tools"] if with_tools else None, agp, extra)
                    r = run_optiq_bytes(*args)
                    err = r.stderr.decode("utf-8", "replace").strip()
                    n_cases += 1
                    if expected is None:
                        n_raise += 1
                        fails.check(r.returncode == 2 and "line " in err,
                                    f"{label}: jinja2 raises, optiq exit {r.returncode}: {err[:200]}")
                    elif fails.check(r.returncode == 0, f"{label}: optiq failed ({r.returncode}): {err[:300]}"):
                        got = r.stdout.decode("utf-8", "replace")
                        fails.check(r.stdout == expected.encode("utf-8"),
                                    f"{label}: output differs\n  jinja2: {expected!r}\n  optiq:  {got!r}")

print(f"oracle_chat_templates: {n_cases} template x conversation cases ({n_raise} where jinja2 raises)")
fails.finish("oracle_chat_templates")
