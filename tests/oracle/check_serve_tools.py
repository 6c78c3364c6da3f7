"""oracle_serve_tools: tool calls, structured output and reasoning of `optiq serve`, through the
official `openai` and `anthropic` SDKs, with `jsonschema` validating what comes back.

On SmolLM2-135M-Instruct (its own template, which knows no tools: the server describes them in
the system message and reads <tool_call> blocks back):
- OpenAI: tool_choice "required" and a named tool give a call whose arguments validate against
  the tool's schema, finish_reason "tool_calls"; the SDK's stream helper assembles the same call
  from the streamed deltas; the round trip (the assistant's call and the tool's result sent
  back) is answered; tool_choice naming a tool that is not there is a BadRequestError;
- response_format json_schema and json_object: the content parses, and validates against the
  schema, plain and streamed;
- Anthropic: tool_choice "any" gives a tool_use block whose input validates, stop_reason
  "tool_use", streamed too (the SDK assembles input_json_delta); the tool_result round trip is
  answered.
With --python-tool on SmolLM2: a forced python call is run by the server (its output equals
what python3 prints for the same code) and the model answers after it, plain, streamed and
through /v1/messages.
On stories260K with a template whose generation prompt opens <think> (as DeepSeek R1's does):
the greedy text of `optiq generate` comes back as OpenAI reasoning_content and as an Anthropic
thinking block, not as answer text, plain and streamed.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import anthropic
import jsonschema
import openai

from oracle_util import STORIES, Failures, run_optiq, work_dir
from serve_util import start_serve, stop_serve

SMOLLM2 = Path(os.environ["OPTIQ_CACHE"]) / "models" / "smollm2-135m-instruct-q4_1.gguf"
WEATHER = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 40},
                                            "unit": {"enum": ["celsius", "fahrenheit"]}},
           "required": ["city", "unit"]}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city",
                                           "parameters": WEATHER}},
         {"type": "function", "function": {"name": "add", "description": "Add two integers",
                                           "parameters": {"type": "object", "properties": {
                                               "a": {"type": "integer"}, "b": {"type": "integer"}},
                                               "required": ["a", "b"]}}}]
PERSON = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 30}, "age": {"type": "integer"},
                                           "languages": {"type": "array", "items": {"type": "string", "maxLength": 20},
                                                         "maxItems": 3}},
          "required": ["name", "age", "languages"], "additionalProperties": False}

MODEL = "m"  # each server below runs under this --alias

f = Failures()
work = work_dir("serve_tools")


def validates(what: str, instance, schema) -> None:
    try:
        jsonschema.validate(instance, schema)
        f.check(True, what)
    except jsonschema.ValidationError as e:
        f.check(False, f"{what}: {instance!r} does not validate: {e.message}")


def stop(proc: subprocess.Popen) -> None:
    rc = stop_serve(proc)
    f.check(rc == 0, f"server exit code {rc} (None: it did not stop)")


if not SMOLLM2.exists():
    f.check(False, f"{SMOLLM2} is missing (scripts/fetch_models.sh)")
else:
    # --no-prompt-cache: a repeated prompt then runs the same passes as the first time, so the
    # streamed answers below are the plain ones bit for bit (a cached prefix leaves the last
    # token to a pass of its own, whose roundoff can flip a near-tie of greedy decoding).
    proc, port, log = start_serve(SMOLLM2, "--alias", MODEL, "-c", 1024, "-t", 1, "--parallel", 2, "--no-prompt-cache")
    try:
        oa = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0, timeout=300)
        ask = [{"role": "user", "content": "What is the weather like in Paris today?"}]
        c = oa.chat.completions.create(model=MODEL, messages=ask, tools=TOOLS, tool_choice="required", max_tokens=80,
                                       temperature=0)
        msg = c.choices[0].message
        f.check(c.choices[0].finish_reason == "tool_calls", f"required: finish_reason {c.choices[0].finish_reason}")
        f.check(bool(msg.tool_calls) and len(msg.tool_calls) == 1, f"required: one tool call, got {msg}")
        if msg.tool_calls:
            call = msg.tool_calls[0]
            f.check(call.type == "function" and call.id.startswith("call_"), f"call shape {call}")
            schema = WEATHER if call.function.name == "get_weather" else TOOLS[1]["function"]["parameters"]
            validates(f"required: {call.function.name} arguments", json.loads(call.function.arguments), schema)
            print(f"tool_choice required: {call.function.name}({call.function.arguments})")

            # The round trip: the call and its result go back; the model answers in text.
            follow = ask + [msg.model_dump(exclude_none=True),
                            {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temperature_c": 18})}]
            c2 = oa.chat.completions.create(model=MODEL, messages=follow, tools=TOOLS, max_tokens=24, temperature=0)
            f.check(c2.choices[0].message.content is not None and c2.usage.prompt_tokens > c.usage.prompt_tokens,
                    f"round trip answered: {c2.choices[0].message} (prompt {c2.usage.prompt_tokens} tokens)")
            print(f"after the tool result: {c2.choices[0].message.content!r}")

        named = {"type": "function", "function": {"name": "add"}}
        c = oa.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "What is 2 plus 40?"}],
                                       tools=TOOLS, tool_choice=named, max_tokens=60, temperature=0)
        calls = c.choices[0].message.tool_calls or []
        f.check(len(calls) == 1 and calls[0].function.name == "add", f"named tool: {c.choices[0].message}")
        if calls:
            validates("named tool arguments", json.loads(calls[0].function.arguments), TOOLS[1]["function"]["parameters"])
        with oa.chat.completions.stream(model=MODEL, messages=[{"role": "user", "content": "What is 2 plus 40?"}],
                                        tools=TOOLS, tool_choice=named, max_tokens=60, temperature=0) as s:
            final = s.get_final_completion()
        scalls = final.choices[0].message.tool_calls or []
        f.check(len(scalls) == 1 and calls and scalls[0].function.name == "add"
                and json.loads(scalls[0].function.arguments) == json.loads(calls[0].function.arguments),
                f"streamed named call equals the plain one: {final.choices[0].message}")
        f.check(final.choices[0].finish_reason == "tool_calls", f"streamed finish {final.choices[0].finish_reason}")
        try:
            oa.chat.completions.create(model=MODEL, messages=ask, tools=TOOLS, max_tokens=8,
                                       tool_choice={"type": "function", "function": {"name": "launch"}})
            f.check(False, "an unknown named tool: no error")
        except openai.BadRequestError as e:
            f.check(e.status_code == 400 and e.body.get("param") == "tool_choice", f"unknown tool error {e.body}")

        # Structured output.
        fmt = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}}
        who = [{"role": "user", "content": "Describe a programmer as JSON."}]
        c = oa.chat.completions.create(model=MODEL, messages=who, response_format=fmt, max_tokens=120, temperature=0)
        text = c.choices[0].message.content
        try:
            validates("json_schema content", json.loads(text), PERSON)
        except json.JSONDecodeError as e:
            f.check(False, f"json_schema content does not parse ({e}): {text!r}")
        print(f"json_schema: {text}")
        chunks = oa.chat.completions.create(model=MODEL, messages=who, response_format=fmt, max_tokens=120,
                                            temperature=0, stream=True)
        streamed = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
        f.check(streamed == text, f"streamed json_schema {streamed!r} != {text!r}")
        c = oa.chat.completions.create(model=MODEL, messages=who, response_format={"type": "json_object"}, max_tokens=120,
                                       temperature=0.8, seed=3)
        try:
            f.check(isinstance(json.loads(c.choices[0].message.content), dict), "json_object is an object")
        except json.JSONDecodeError as e:
            f.check(False, f"json_object content does not parse ({e}): {c.choices[0].message.content!r}")

        # Anthropic.
        an = anthropic.Anthropic(base_url=f"http://127.0.0.1:{port}", api_key="none", max_retries=0, timeout=300)
        atools = [{"name": t["function"]["name"], "description": t["function"]["description"],
                   "input_schema": t["function"]["parameters"]} for t in TOOLS]
        m = an.messages.create(model=MODEL, max_tokens=80, tools=atools, tool_choice={"type": "any"},
                               messages=[{"role": "user", "content": "What is the weather like in Paris today?"}],
                               extra_body={"temperature": 0})
        uses = [b for b in m.content if b.type == "tool_use"]
        f.check(m.stop_reason == "tool_use" and len(uses) == 1, f"anthropic any: {m}")
        if uses:
            schema = next(t["input_schema"] for t in atools if t["name"] == uses[0].name)
            validates(f"anthropic {uses[0].name} input", uses[0].input, schema)
            with an.messages.stream(model=MODEL, max_tokens=80, tools=atools, tool_choice={"type": "any"},
                                    messages=[{"role": "user", "content": "What is the weather like in Paris today?"}],
                                    extra_body={"temperature": 0}) as s:
                sm = s.get_final_message()
            suses = [b for b in sm.content if b.type == "tool_use"]
            f.check(len(suses) == 1 and suses[0].name == uses[0].name and suses[0].input == uses[0].input
                    and sm.stop_reason == "tool_use", f"anthropic streamed tool_use equals the plain one: {sm}")
            back = an.messages.create(model=MODEL, max_tokens=24, tools=atools, extra_body={"temperature": 0}, messages=[
                {"role": "user", "content": "What is the weather like in Paris today?"},
                {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in m.content]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0].id, "content": "18 C, sunny"}]}])
            def prompt_size(u) -> int:  # Anthropic's input_tokens leave out what the cache read
                return u.input_tokens + u.cache_read_input_tokens
            f.check(prompt_size(back.usage) > prompt_size(m.usage) and back.stop_reason in ("end_turn", "max_tokens"),
                    f"anthropic round trip answered: {back}")
        oa.close()
        an.close()
    finally:
        stop(proc)

# --python-tool: the server runs the model's python calls itself and answers after them. The
# forced first call's code, run by the system's python3 directly, prints what the server fed
# back to the model (the sandbox changes where it runs, not what it computes).
if SMOLLM2.exists():
    proc, port, log = start_serve(SMOLLM2, "--alias", MODEL, "-c", 2048, "-t", 1, "--python-tool", "--no-prompt-cache")
    try:
        oa = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0, timeout=300)
        ask = [{"role": "user", "content": "Use python to print the value of 2 + 3."}]
        force = {"type": "function", "function": {"name": "python"}}
        c = oa.chat.completions.create(model=MODEL, messages=ask, tool_choice=force, max_tokens=120, temperature=0)
        runs = (c.model_extra or {}).get("optiq_python_runs") or []
        f.check(len(runs) >= 1 and c.choices[0].finish_reason in ("stop", "length") and not c.choices[0].message.tool_calls,
                f"python tool: runs {runs}, answer {c.choices[0]}")
        for run in runs:
            direct = subprocess.run(["python3", "-c", run["code"]], capture_output=True, text=True, timeout=30,
                                    cwd=work)
            expected = direct.stdout + direct.stderr
            f.check(run["output"].startswith(expected) and run["exit_code"] == direct.returncode,
                    f"python run of {run['code']!r}: server fed back {run['output']!r} (exit {run['exit_code']}), "
                    f"python3 prints {expected!r} (exit {direct.returncode})")
        print(f"python tool: ran {[r['code'] for r in runs]}, answered {c.choices[0].message.content!r}")
        with oa.chat.completions.stream(model=MODEL, messages=ask, tool_choice=force, max_tokens=120, temperature=0) as s:
            final = s.get_final_completion()
        f.check(final.choices[0].message.content == c.choices[0].message.content,
                f"streamed python-tool answer {final.choices[0].message.content!r} != {c.choices[0].message.content!r}")
        an = anthropic.Anthropic(base_url=f"http://127.0.0.1:{port}", api_key="none", max_retries=0, timeout=300)
        m = an.messages.create(model=MODEL, max_tokens=120, tool_choice={"type": "tool", "name": "python"},
                               messages=ask, extra_body={"temperature": 0})
        f.check(m.stop_reason in ("end_turn", "max_tokens") and (m.model_extra or {}).get("optiq_python_runs"),
                f"anthropic python tool: {m}")
        oa.close()
        an.close()
    finally:
        stop(proc)

# Reasoning, on stories260K: the template opens <think> and the model never closes it, so the
# whole greedy continuation is reasoning.
template = work / "think.jinja"
template.write_text("{% for message in messages %}{{ message['content'] }}{% endfor %}"
                    "{% if add_generation_prompt %}<think>\n{% endif %}")
r = run_optiq("generate", STORIES, "--chat", "--chat-template-file", template, "-p", "Once upon a time", "-n", "24",
              "-c", "256", "-t", "1")
f.check(r.returncode == 0, f"optiq generate: {r.stderr}")
reference = r.stdout[:-1].strip()
proc, port, _ = start_serve(STORIES, "--alias", MODEL, "--chat-template-file", template, "-c", 256, "-t", 1)
try:
    oa = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0, timeout=60)
    c = oa.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Once upon a time"}],
                                   max_tokens=24, temperature=0)
    m = c.choices[0].message
    reasoning = getattr(m, "reasoning_content", None) or (m.model_extra or {}).get("reasoning_content")
    f.check(reasoning == reference and not m.content, f"reasoning_content {reasoning!r} (content {m.content!r}) != "
                                                      f"generate's {reference!r}")
    chunks = oa.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Once upon a time"}],
                                        max_tokens=24, temperature=0, stream=True)
    streamed = "".join((ch.choices[0].delta.model_extra or {}).get("reasoning_content") or "" for ch in chunks if ch.choices)
    f.check(streamed == reference, f"streamed reasoning_content {streamed!r} != {reference!r}")
    an = anthropic.Anthropic(base_url=f"http://127.0.0.1:{port}", api_key="none", max_retries=0, timeout=60)
    with an.messages.stream(model=MODEL, max_tokens=24, messages=[{"role": "user", "content": "Once upon a time"}],
                            extra_body={"temperature": 0}) as s:
        final = s.get_final_message()
    thinking = [b.thinking for b in final.content if b.type == "thinking"]
    f.check(thinking == [reference] and all(b.type != "text" or not b.text for b in final.content),
            f"anthropic thinking blocks {final.content} != [{reference!r}]")
    oa.close()
    an.close()
finally:
    stop(proc)

f.finish("oracle_serve_tools")
