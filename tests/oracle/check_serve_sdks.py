"""oracle_serve_sdks: `optiq serve` through the official `openai` and `anthropic` Python SDKs (the
clients people point at such servers), on stories260K with a small chat template file:
- /v1/models lists the alias and the KV cache types;
- chat completions, plain and streamed (the SDK's stream helper assembles the final message;
  a raw stream has the role first, content deltas, a finish chunk and the usage chunk), text
  completions plain and streamed, stop sequences (cut, not returned);
- /v1/messages plain and streamed (the SDK's text_stream and final message), count_tokens;
- at temperature 0 every one of these texts equals `optiq generate` (with --chat for chat) on
  the same conversation and settings;
- typed errors: BadRequestError (n > 1, max_tokens beyond the context, a bad temperature),
  AuthenticationError (wrong key), NotFoundError (another model), with each API's error shape;
  raw malformed JSON, an unknown path and an over-limit body get 4xx in the path's shape;
- the prompt cache: a chat's second turn reports cached tokens (OpenAI
  prompt_tokens_details.cached_tokens, Anthropic cache_read_input_tokens, /metrics) and its
  greedy text equals a fresh server's; its time to first token is printed beside the fresh one's;
- chat logprobs (plain and streamed, the same values): one per generated token, the greedy token
  on top of its top_logprobs; top_logprobs beyond 20 is a BadRequestError;
- concurrent requests on two slots give the greedy text; /health still answers after all the
  bad requests; /metrics counts requests and tokens; a client that drops a stream does not hurt;
- SIGTERM stops the server with exit code 0;
- with one slot busy and --max-queue 0 the next request is a 503 at once, and the server answers
  again once the slot is free;
- with SmolLM2-135M-Instruct fetched (scripts/fetch_models.sh): its own template, greedy chat and
  a streamed Anthropic message with a system prompt equal `optiq generate --chat --system`; two
  streams in flight at SIGTERM (one waiting for the only slot) both finish."""
from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anthropic
import openai

from oracle_util import STORIES, Failures, run_optiq, work_dir
from serve_util import start_serve, stop_serve

KEY = "sk-optiq-test"
N = 24            # tokens per greedy request
CTX = 256
PROMPT = "Once upon a time"
# A minimal template: stories260K has none and continues plain text, so the chat prompt is the
# conversation's text (the system message on its own line first).
# `preamble` (unset unless a request's chat_template_kwargs sets it) checks that those reach the template.
TEMPLATE = ("{% if preamble is defined %}{{ preamble + '\\n' }}{% endif %}"
            "{% for message in messages %}{% if message['role'] == 'system' %}{{ message['content'] + '\\n' }}"
            "{% else %}{{ message['content'] }}{% endif %}{% endfor %}")
KV = ["--cache-type-k", "f16", "--cache-type-v", "f16"]
# The anthropic SDK (2.x) no longer has sampling keyword arguments; the API field still works.
GREEDY = {"temperature": 0}

f = Failures()
work = work_dir("serve_sdks")
template = work / "plain.jinja"
template.write_text(TEMPLATE)


def start_server() -> tuple[subprocess.Popen, int, list[str]]:
    return start_serve(STORIES, "--alias", "stories", "--api-key", KEY, "--chat-template-file", template,
                       "-c", CTX, "--parallel", 2, "-t", 1, *KV)


def generate(*args: str) -> str:
    r = run_optiq("generate", STORIES, "-n", str(N), "-c", str(CTX), "-t", "1", *KV, *args)
    if r.returncode != 0:
        raise AssertionError(f"optiq generate {args} failed: {r.stderr}")
    assert r.stdout.endswith("\n")
    return r.stdout[:-1]


def raw(port: int, method: str, path: str, body: bytes | None, headers: dict) -> tuple[int, dict | str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read().decode()
    conn.close()
    try:
        return resp.status, json.loads(data)
    except json.JSONDecodeError:
        return resp.status, data


def expect_error(what: str, exc_type, fn) -> Exception | None:
    try:
        fn()
    except exc_type as e:
        f.check(True, what)
        return e
    except Exception as e:  # noqa: BLE001 - report the wrong type
        f.check(False, f"{what}: raised {type(e).__name__}: {e}")
        return None
    f.check(False, f"{what}: no error")
    return None


proc, port, log = start_server()
auth = {"Authorization": f"Bearer {KEY}"}
try:
    oa = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, max_retries=0, timeout=60)
    an = anthropic.Anthropic(base_url=f"http://127.0.0.1:{port}", api_key=KEY, max_retries=0, timeout=60)
    user = [{"role": "user", "content": PROMPT}]
    chat_ref = generate("--chat", "--chat-template-file", str(template), "-p", PROMPT)
    text_ref = generate("-p", PROMPT)
    f.check(len(chat_ref) > 20, f"optiq generate --chat gave too little text: {chat_ref!r}")

    # --- models
    models = oa.models.list().data
    f.check([m.id for m in models] == ["stories"], f"models: {[m.id for m in models]}")
    extra = (models[0].model_extra or {}).get("optiq", {}) if models else {}
    f.check(extra.get("kv_cache_type_k") == "f16" and extra.get("kv_cache_type_v") == "f16", f"models' optiq: {extra}")

    # --- chat completions
    c = oa.chat.completions.create(model="stories", messages=user, max_tokens=N, temperature=0)
    f.check(c.choices[0].message.content == chat_ref, f"chat text {c.choices[0].message.content!r} != generate's {chat_ref!r}")
    f.check(c.choices[0].finish_reason in ("length", "stop"), f"chat finish_reason {c.choices[0].finish_reason}")
    f.check(c.usage.completion_tokens <= N and c.usage.prompt_tokens > 0, f"chat usage {c.usage}")
    f.check(c.object == "chat.completion" and c.id.startswith("chatcmpl-"), f"chat object {c.object} {c.id}")

    deltas = []
    with oa.chat.completions.stream(model="stories", messages=user, max_tokens=N, temperature=0) as s:
        for event in s:
            if event.type == "content.delta":
                deltas.append(event.delta)
        try:
            final = s.get_final_completion()
        except openai.LengthFinishReasonError as e:  # the helper's way to say "length" (it parses the content)
            final = e.completion
    f.check(final.choices[0].message.content == chat_ref, f"streamed chat {final.choices[0].message.content!r}")
    f.check("".join(deltas) == chat_ref and len(deltas) > 1, f"chat deltas {deltas}")

    chunks = list(oa.chat.completions.create(model="stories", messages=user, max_tokens=N, temperature=0, stream=True,
                                             stream_options={"include_usage": True}))
    f.check(bool(chunks) and chunks[0].choices[0].delta.role == "assistant", "first chunk carries the role")
    f.check(all(ch.object == "chat.completion.chunk" for ch in chunks), "chunk objects")
    finishes = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    f.check(finishes == [c.choices[0].finish_reason], f"finish chunks {finishes}")
    f.check(chunks[-1].choices == [] and chunks[-1].usage is not None
            and chunks[-1].usage.completion_tokens == c.usage.completion_tokens, f"usage chunk {chunks[-1]}")

    # logprobs: each generated token's, greedy picks the most likely one
    lc = oa.chat.completions.create(model="stories", messages=user, max_tokens=N, temperature=0, logprobs=True, top_logprobs=3)
    lps = lc.choices[0].logprobs.content if lc.choices[0].logprobs else []
    f.check(len(lps) == lc.usage.completion_tokens and lc.choices[0].message.content == chat_ref, f"chat logprobs: {len(lps)} tokens")
    f.check(all(t.logprob <= 0 and len(t.top_logprobs) == 3 and t.top_logprobs[0].token == t.token
                and abs(t.top_logprobs[0].logprob - t.logprob) < 1e-6 and bytes(t.bytes).decode(errors="replace") is not None
                for t in lps), f"chat logprobs entries {lps[:2]}")
    streamed_lps = [t for ch in oa.chat.completions.create(model="stories", messages=user, max_tokens=N, temperature=0,
                                                           logprobs=True, stream=True)
                    if ch.choices and ch.choices[0].logprobs for t in ch.choices[0].logprobs.content]
    # (float roundoff apart: each request reuses a different share of the prompt cache)
    f.check(len(streamed_lps) == len(lps) and all(a.token == b.token and abs(a.logprob - b.logprob) < 1e-3
                                                  for a, b in zip(streamed_lps, lps)),
            f"streamed logprobs {len(streamed_lps)} vs {len(lps)}")
    expect_error("openai top_logprobs 21 -> BadRequestError", openai.BadRequestError,
                 lambda: oa.chat.completions.create(model="stories", messages=user, logprobs=True, top_logprobs=21))

    kw = oa.chat.completions.create(model="stories", messages=user, max_tokens=1, temperature=0,
                                    extra_body={"chat_template_kwargs": {"preamble": "The end."}})
    f.check(kw.usage.prompt_tokens > c.usage.prompt_tokens,
            f"chat_template_kwargs reach the template: {kw.usage.prompt_tokens} vs {c.usage.prompt_tokens} prompt tokens")

    # stop sequences: the text ends before the first one, which is not returned
    stop = chat_ref[len(chat_ref) // 2:len(chat_ref) // 2 + 3]
    cut = chat_ref[:chat_ref.find(stop)]
    c = oa.chat.completions.create(model="stories", messages=user, max_tokens=N, temperature=0, stop=[stop, "@@@"])
    f.check(c.choices[0].message.content == cut and c.choices[0].finish_reason == "stop",
            f"stop {stop!r}: {c.choices[0].message.content!r} ({c.choices[0].finish_reason}), want {cut!r}")

    # --- text completions
    t = oa.completions.create(model="stories", prompt=PROMPT, max_tokens=N, temperature=0)
    f.check(t.choices[0].text == text_ref, f"completion {t.choices[0].text!r} != generate's {text_ref!r}")
    streamed = "".join(ch.choices[0].text for ch in oa.completions.create(
        model="stories", prompt=PROMPT, max_tokens=N, temperature=0, stream=True) if ch.choices)
    f.check(streamed == text_ref, f"streamed completion {streamed!r}")

    # --- Anthropic messages
    m = an.messages.create(model="stories", max_tokens=N, messages=user, extra_body=GREEDY)
    got = "".join(b.text for b in m.content if b.type == "text")
    f.check(got == chat_ref, f"messages text {got!r} != {chat_ref!r}")
    f.check(m.stop_reason in ("max_tokens", "end_turn") and m.usage.output_tokens <= N, f"messages {m.stop_reason} {m.usage}")
    with an.messages.stream(model="stories", max_tokens=N, messages=user, extra_body=GREEDY) as s:
        pieces = list(s.text_stream)
        final_m = s.get_final_message()
    f.check("".join(pieces) == chat_ref, f"messages text_stream {pieces}")
    f.check("".join(b.text for b in final_m.content if b.type == "text") == chat_ref and final_m.stop_reason == m.stop_reason,
            f"messages final {final_m}")
    m = an.messages.create(model="stories", max_tokens=N, messages=user, stop_sequences=[stop], extra_body=GREEDY)
    f.check(m.content[0].text == cut and m.stop_reason == "stop_sequence" and m.stop_sequence == stop,
            f"messages stop_sequences: {m}")
    counted = an.messages.count_tokens(model="stories", messages=user)
    # Anthropic's input_tokens leave out the prompt cache's tokens (this prompt ran before)
    f.check(counted.input_tokens == m.usage.input_tokens + (m.usage.cache_read_input_tokens or 0),
            f"count_tokens {counted.input_tokens} vs {m.usage}")
    counted_sys = an.messages.count_tokens(model="stories", system="You tell stories.", messages=user)
    f.check(counted_sys.input_tokens > counted.input_tokens, "count_tokens counts the system prompt")

    # --- typed errors
    e = expect_error("openai n=2 -> BadRequestError", openai.BadRequestError,
                     lambda: oa.chat.completions.create(model="stories", messages=user, n=2))
    f.check(e is None or e.param == "n", f"n error param: {getattr(e, 'param', None)}")
    e = expect_error("openai max_tokens beyond the context -> BadRequestError", openai.BadRequestError,
                     lambda: oa.chat.completions.create(model="stories", messages=user, max_tokens=CTX + 1))
    f.check(e is None or e.code == "context_length_exceeded", f"context error code: {getattr(e, 'code', None)}")
    e = expect_error("openai prompt longer than the context -> BadRequestError", openai.BadRequestError,
                     lambda: oa.completions.create(model="stories", prompt=PROMPT * 100, max_tokens=1))
    f.check(e is None or (e.code == "context_length_exceeded" and e.param == "prompt"),
            f"long prompt error: {getattr(e, 'code', None)} {getattr(e, 'param', None)}")
    expect_error("openai temperature 'hot' -> BadRequestError", openai.BadRequestError,
                 lambda: oa.chat.completions.create(model="stories", messages=user, extra_body={"temperature": "hot"}))
    expect_error("openai presence_penalty 3 -> BadRequestError", openai.BadRequestError,
                 lambda: oa.chat.completions.create(model="stories", messages=user, presence_penalty=3.0))
    pen = oa.chat.completions.create(model="stories", messages=user, max_tokens=N, temperature=0,
                                     presence_penalty=2.0, frequency_penalty=2.0)
    print(f"check_serve_sdks: greedy with presence/frequency penalties 2: {pen.choices[0].message.content!r} "
          f"(without: {chat_ref!r})")
    f.check(bool(pen.choices[0].message.content), "presence/frequency penalties are accepted")
    e = expect_error("openai unknown model -> NotFoundError", openai.NotFoundError,
                     lambda: oa.chat.completions.create(model="gpt-4o", messages=user))
    f.check(e is None or e.code == "model_not_found", f"model error code: {getattr(e, 'code', None)}")
    bad_oa = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="wrong", max_retries=0)
    expect_error("openai wrong key -> AuthenticationError", openai.AuthenticationError, lambda: bad_oa.models.list())

    e = expect_error("anthropic temperature 1.5 -> BadRequestError", anthropic.BadRequestError,
                     lambda: an.messages.create(model="stories", max_tokens=5, messages=user, extra_body={"temperature": 1.5}))
    f.check(e is None or (e.body or {}).get("error", {}).get("type") == "invalid_request_error", f"anthropic 400 body {getattr(e, 'body', None)}")
    e = expect_error("anthropic unknown model -> NotFoundError", anthropic.NotFoundError,
                     lambda: an.messages.create(model="claude-x", max_tokens=5, messages=user))
    f.check(e is None or (e.body or {}).get("type") == "error", f"anthropic 404 body {getattr(e, 'body', None)}")
    bad_an = anthropic.Anthropic(base_url=f"http://127.0.0.1:{port}", api_key="wrong", max_retries=0)
    expect_error("anthropic wrong key -> AuthenticationError", anthropic.AuthenticationError,
                 lambda: bad_an.messages.create(model="stories", max_tokens=5, messages=user))

    # --- raw HTTP: malformed bodies, unknown paths, limits, keys
    json_hdr = {**auth, "Content-Type": "application/json"}
    status, body = raw(port, "POST", "/v1/chat/completions", b'{"messages": [', json_hdr)
    f.check(status == 400 and isinstance(body, dict) and "message" in body.get("error", {}), f"malformed JSON: {status} {body}")
    status, body = raw(port, "POST", "/v1/messages", b'not json', {**json_hdr, "x-api-key": KEY})
    f.check(status == 400 and isinstance(body, dict) and body.get("type") == "error", f"anthropic malformed: {status} {body}")
    status, body = raw(port, "GET", "/v1/nowhere", None, auth)
    f.check(status == 404 and isinstance(body, dict) and "error" in body, f"unknown path: {status} {body}")
    big = b'{"prompt": "' + b"a" * (9 << 20) + b'"}'
    try:
        status, body = raw(port, "POST", "/v1/messages", big, {**json_hdr, "x-api-key": KEY})
    except OSError as err:
        status, body = -1, str(err)
    f.check(status == 413 and isinstance(body, dict) and body.get("error", {}).get("type") == "request_too_large",
            f"over-limit body: {status} {str(body)[:200]}")
    status, body = raw(port, "GET", "/v1/models", None, {})
    f.check(status == 401, f"no key: {status}")
    status, body = raw(port, "POST", "/v1/completions", json.dumps({"prompt": PROMPT, "max_tokens": 2}).encode(),
                       {"x-api-key": KEY, "Content-Type": "application/json"})
    f.check(status == 200, f"x-api-key accepted: {status} {body}")
    status, body = raw(port, "GET", "/health", None, {})
    f.check(status == 200 and body == {"status": "ok"}, f"/health after bad requests: {status} {body}")

    # --- a client that drops a stream mid-way
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("POST", "/v1/chat/completions", body=json.dumps(
        {"messages": user, "max_tokens": CTX - 16, "temperature": 1, "stream": True}), headers=json_hdr)
    resp = conn.getresponse()
    first = resp.readline() if resp.status == 200 else b""
    f.check(first.startswith(b"data: "), f"dropped stream began: {resp.status} {first[:80]!r}")
    conn.close()

    # --- concurrent requests on two slots
    def one(_: int) -> str:
        r = oa.chat.completions.create(model="stories", messages=user, max_tokens=N, temperature=0)
        return r.choices[0].message.content
    with ThreadPoolExecutor(4) as pool:
        texts = list(pool.map(one, range(4)))
    f.check(all(t == chat_ref for t in texts), f"concurrent texts {texts}")
    status, body = raw(port, "GET", "/health", None, {})
    f.check(status == 200, f"/health after the dropped stream and concurrent requests: {status}")

    # --- prompt cache: the second turn of a chat prefills only what its slot does not hold; its
    # greedy text equals a fresh server's, which holds nothing.
    reply = oa.chat.completions.create(model="stories", messages=user, max_tokens=N, temperature=0).choices[0].message.content
    turn2 = [*user, {"role": "assistant", "content": reply}, {"role": "user", "content": " The dog"}]

    def timed_stream(client: openai.OpenAI, messages: list) -> tuple[str, float, object]:
        """The streamed greedy text, its time to the first content (s), and its usage."""
        start, ttft, pieces, usage = time.perf_counter(), None, [], None
        for ch in client.chat.completions.create(model="stories", messages=messages, max_tokens=N, temperature=0,
                                                 stream=True, stream_options={"include_usage": True}):
            if ch.choices and ch.choices[0].delta.content:
                ttft = ttft if ttft is not None else time.perf_counter() - start
                pieces.append(ch.choices[0].delta.content)
            usage = ch.usage or usage
        return "".join(pieces), ttft if ttft is not None else float("nan"), usage

    text2, ttft2, usage2 = timed_stream(oa, turn2)
    cached2 = usage2.prompt_tokens_details.cached_tokens if usage2 and usage2.prompt_tokens_details else 0
    f.check(usage2 is not None and 0 < cached2 < usage2.prompt_tokens, f"second turn's cached tokens: {usage2}")
    m2 = an.messages.create(model="stories", max_tokens=N, messages=turn2, extra_body=GREEDY)
    counted2 = an.messages.count_tokens(model="stories", messages=turn2).input_tokens
    f.check((m2.usage.cache_read_input_tokens or 0) > 0 and m2.usage.input_tokens + m2.usage.cache_read_input_tokens == counted2,
            f"anthropic second turn usage {m2.usage} (count_tokens {counted2})")
    fresh, fresh_port, _ = start_server()
    try:
        with openai.OpenAI(base_url=f"http://127.0.0.1:{fresh_port}/v1", api_key=KEY, max_retries=0, timeout=60) as oa_fresh:
            fresh_text, fresh_ttft, fresh_usage = timed_stream(oa_fresh, turn2)
    finally:
        stop_serve(fresh)
    f.check(fresh_usage is not None and fresh_usage.prompt_tokens_details.cached_tokens == 0, f"fresh usage {fresh_usage}")
    f.check(text2 == fresh_text and "".join(b.text for b in m2.content if b.type == "text") == fresh_text,
            f"second turn with the prompt cache {text2!r} != a fresh server's {fresh_text!r}")
    print(f"check_serve_sdks: second turn, {usage2.prompt_tokens if usage2 else '?'} prompt tokens, {cached2} cached: "
          f"time to first token {ttft2 * 1000:.1f} ms with the prompt cache, {fresh_ttft * 1000:.1f} ms on a fresh server")

    # --- metrics
    status, text = raw(port, "GET", "/metrics", None, auth)
    f.check(status == 200 and 'optiq_requests_total{route="/v1/chat/completions",status="200"}' in str(text)
            and 'status="400"' in str(text), f"metrics: {str(text)[:400]}")
    gen = re.search(r"^optiq_generated_tokens_total (\d+)$", str(text), re.M)
    f.check(gen is not None and int(gen.group(1)) >= 8 * N // 2, f"generated tokens counter: {gen and gen.group(0)}")
    hits = re.search(r"^optiq_prompt_cached_tokens_total (\d+)$", str(text), re.M)
    f.check(hits is not None and int(hits.group(1)) >= cached2 > 0, f"cached tokens counter: {hits and hits.group(0)}")

    def metric(name: str) -> float:
        m = re.search(rf"^{re.escape(name)} (\S+)$", str(text), re.M)
        return float(m.group(1)) if m else float("nan")

    answered = sum(int(n) for n in re.findall(r'^optiq_requests_total\{route="/v1/(?:chat/completions|completions|messages)",'
                                               r'status="200"\} (\d+)$', str(text), re.M))
    ttft_count, ttft_sum = metric("optiq_time_to_first_token_seconds_count"), metric("optiq_time_to_first_token_seconds_sum")
    f.check(0 < ttft_count <= answered and ttft_sum > 0, f"time-to-first-token histogram: {ttft_count} of {answered} "
            f"answered generations, sum {ttft_sum}")
    f.check(metric('optiq_time_to_first_token_seconds_bucket{le="+Inf"}') == ttft_count, "TTFT +Inf bucket != count")
    f.check(metric("optiq_time_per_output_token_seconds_count") > 0, "no per-token latencies recorded")
    # The prompt cache keeps rows in the (now free) slots; nothing waits for a slot at rest.
    in_use, total = metric("optiq_kv_cache_bytes_in_use"), metric("optiq_kv_cache_bytes_total")
    f.check(0 < in_use <= total, f"KV cache bytes in use {in_use}, allocated {total}")
    f.check(metric("optiq_requests_waiting") == 0, f"requests waiting at rest: {metric('optiq_requests_waiting')}")
finally:
    # Close the SDKs' pooled keep-alive connections first, or the server waits out their idle timeout.
    for client in ("oa", "an", "bad_oa", "bad_an"):
        if client in globals():
            globals()[client].close()
    rc = stop_serve(proc)
    f.check(rc == 0, f"exit code after SIGTERM: {rc}")

# A full queue: one slot busy with a stream and --max-queue 0, so the next request gets a 503 at
# once (the SDK's InternalServerError) in the API's error shape, and the server carries on.
qproc, qport, _ = start_serve(STORIES, "--chat-template-file", template, "-c", CTX, "--parallel", 1, "-t", 1,
                              "--max-queue", 0)
try:
    qa = openai.OpenAI(base_url=f"http://127.0.0.1:{qport}/v1", api_key="none", max_retries=0, timeout=60)
    held = qa.chat.completions.create(model="stories260K.gguf", messages=user, max_tokens=CTX - 16, stream=True)
    next(iter(held))  # the slot is taken once the stream has begun
    err = expect_error("a full queue", openai.InternalServerError,
                       lambda: qa.chat.completions.create(model="stories260K.gguf", messages=user, max_tokens=4))
    f.check(err is not None and err.status_code == 503 and "busy" in str(err.body.get("message", "")),
            f"queue-full error: {err and err.body}")
    held.close()  # the server notices at its next write and frees the slot
    after = None
    for _ in range(100):
        try:
            after = qa.chat.completions.create(model="stories260K.gguf", messages=user, max_tokens=4)
            break
        except openai.InternalServerError:
            time.sleep(0.1)
    f.check(after is not None and after.choices[0].finish_reason in ("length", "stop"),
            "the server answers again once the slot is free")
    qa.close()
finally:
    stop_serve(qproc)

# A real chat model with its own template (special tokens, byte-level BPE), when
# scripts/fetch_models.sh has fetched it: greedy chat with a system message equals generate --chat.
SMOLLM2 = Path(os.environ["OPTIQ_CACHE"]) / "models" / "smollm2-135m-instruct-q4_1.gguf"
if SMOLLM2.exists():
    system, question = "You answer briefly.", "What is the capital of France?"
    r = run_optiq("generate", SMOLLM2, "--chat", "--system", system, "-p", question, "-n", "16", "-c", "512", "-t", "1")
    smol_ref = r.stdout[:-1] if r.returncode == 0 else None
    f.check(smol_ref is not None, f"optiq generate on SmolLM2 failed: {r.stderr}")
    # --no-prompt-cache: these requests repeat one prompt, whose last token the prompt cache would
    # run as a batch of one, and SmolLM2's greedy text parts from generate's by float roundoff
    # there (Generator::Options::prompt_cache); prefilled whole it is exact.
    smol, smol_port, _ = start_serve(SMOLLM2, "-c", 512, "-t", 1, "--parallel", 1, "--no-prompt-cache")
    threads: list[threading.Thread] = []
    try:
        oa2 = openai.OpenAI(base_url=f"http://127.0.0.1:{smol_port}/v1", api_key="none", max_retries=0, timeout=120)
        c2 = oa2.chat.completions.create(model=SMOLLM2.name, max_tokens=16, temperature=0, messages=[
            {"role": "system", "content": system}, {"role": "user", "content": question}])
        f.check(c2.choices[0].message.content == smol_ref,
                f"SmolLM2 chat {c2.choices[0].message.content!r} != generate --chat's {smol_ref!r}")
        an2 = anthropic.Anthropic(base_url=f"http://127.0.0.1:{smol_port}", api_key="none", max_retries=0, timeout=120)
        with an2.messages.stream(model=SMOLLM2.name, max_tokens=16, system=system, extra_body=GREEDY,
                                 messages=[{"role": "user", "content": question}]) as s:
            smol_stream = "".join(s.text_stream)
        f.check(smol_stream == smol_ref, f"SmolLM2 messages stream {smol_stream!r} != {smol_ref!r}")
        oa2.close()
        an2.close()

        # SIGTERM with streams in flight, one of them still waiting for the only slot: both finish.
        def late_stream(results: list) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", smol_port, timeout=120)
            conn.request("POST", "/v1/chat/completions", body=json.dumps(
                {"messages": [{"role": "user", "content": question}], "max_tokens": 16, "temperature": 0, "stream": True}))
            resp = conn.getresponse()
            results.append((resp.status, resp.read().decode()))
            conn.close()
        in_flight: list = []
        threads = [threading.Thread(target=late_stream, args=(in_flight,)) for _ in range(2)]
        for t in threads:
            t.start()
        time.sleep(0.3)
    finally:
        rc = stop_serve(smol)
        f.check(rc == 0, f"SmolLM2 server exit code {rc} (None: it did not stop)")
    for t in threads:
        t.join(timeout=60)
    f.check(len(in_flight) == 2 and all(st == 200 and body.rstrip().endswith("data: [DONE]") for st, body in in_flight),
            f"streams in flight at SIGTERM finish: {[(st, body[-60:]) for st, body in in_flight]}")
else:
    print(f"check_serve_sdks: {SMOLLM2} is missing (scripts/fetch_models.sh); SmolLM2 part skipped")

time.sleep(0.2)
logs = "".join(log)
f.check(re.search(r"POST /v1/chat/completions 200 prompt=\d+ generated=\d+ \d+ ms", logs) is not None,
        "per-request log lines")
f.check("stopped" in logs, "the server says it stopped")
if f.items:
    print(logs[-3000:], file=sys.stderr)
f.finish("oracle_serve_sdks")
