#!/usr/bin/env python3
"""Writes a small copy of each real tokenizer.json given, as a fuzzing seed: the pipeline
(normalizer, pre-tokenizer, post-processor, decoder, model options) verbatim, the vocabulary cut
down to a few special tokens, the byte tokens and the tokens the first merges build, with ids
renumbered densely. A full 2 MB file takes the instrumented loader over a second, so the
fuzzer would barely mutate it; a few kB keep the real structure at thousands of runs a second.
Usage: shrink_tokenizer_json.py OUT_DIR TOKENIZER_JSON...
"""
import json
import pathlib
import re
import sys

KEEP_ADDED = 16
KEEP_MERGES = 300
BYTE_TOKEN = re.compile(r"<0x[0-9A-F]{2}>")
SPACE = "\u2581"


def is_alphabet(token):
    # Single characters up to U+017F hold ASCII and GPT-2's byte-level alphabet (which ends
    # at U+0143); ▁ is SentencePiece's space.
    return token == SPACE or (len(token) == 1 and ord(token) < 0x180) or BYTE_TOKEN.fullmatch(token)


def shrink(doc):
    model = doc["model"]
    vocab = model["vocab"]
    added = doc.get("added_tokens", [])[:KEEP_ADDED]
    keep = {a["content"] for a in added} | {t for t in vocab if is_alphabet(t)}
    merges = []
    for m in model["merges"]:
        left, right = m.split(" ", 1) if isinstance(m, str) else m
        merged = left + right
        if left in keep and right in keep and merged in vocab:
            keep.add(merged)
            merges.append(m)
            if len(merges) == KEEP_MERGES:
                break
    old_ids = sorted({vocab[t] for t in keep if t in vocab} | {a["id"] for a in added})
    new_id = {old: new for new, old in enumerate(old_ids)}
    model["vocab"] = {t: new_id[i] for t, i in sorted(vocab.items(), key=lambda kv: kv[1])
                      if i in new_id}
    model["merges"] = merges
    doc["added_tokens"] = [dict(a, id=new_id[a["id"]]) for a in added]
    renumber_post_processor(doc.get("post_processor"), new_id)
    return doc


def renumber_post_processor(p, new_id):
    if not isinstance(p, dict):
        return
    for q in p.get("processors") or []:
        renumber_post_processor(q, new_id)
    for special in (p.get("special_tokens") or {}).values():
        special["ids"] = [new_id.get(i, i) for i in special.get("ids", [])]


def main():
    out = pathlib.Path(sys.argv[1])
    for i, src in enumerate(sys.argv[2:]):
        path = pathlib.Path(src)
        doc = shrink(json.loads(path.read_text(encoding="utf-8")))
        name = f"shared-{i}-{path.parent.name}-small.json"
        (out / name).write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
