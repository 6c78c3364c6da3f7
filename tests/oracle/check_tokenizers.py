"""oracle_tokenizers_hf: optiq tokenizes exactly as Hugging Face `tokenizers` on real tokenizer
files: SmolLM2 (tokenizer.json, byte-level BPE with Digits), Mistral v0.3 (tokenizer.json,
SentencePiece-style BPE with Metaspace and byte fallback) and Qwen2.5 (vocab.json + merges.txt
+ added tokens only, built the way transformers' Qwen2 converter builds the fast tokenizer:
NFC, Qwen2's split regex, byte-level).

Every text of tests/oracle/tokenizer_corpus.json is encoded with special tokens parsed and
with `encode_special_tokens` (specials as plain text); ids must be identical, optiq's decode
must equal tokenizers' decode, and encode with add_special_tokens must add BOS/EOS alike.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

sys.path.insert(0, str(Path(__file__).parent))
from oracle_util import SHARED, Failures, run_optiq, work_dir  # noqa: E402

HERE = Path(__file__).parent
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def qwen2_from_vocab_merges(folder: Path) -> Tokenizer:
    """What transformers' Qwen2Converter makes of vocab.json + merges.txt + added tokens."""
    bpe = models.BPE.from_file(str(folder / "vocab.json"), str(folder / "merges.txt"),
                               unk_token=None, continuing_subword_prefix="", end_of_word_suffix="",
                               fuse_unk=False, byte_fallback=False)
    tok = Tokenizer(bpe)
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    config = json.loads((folder / "tokenizer_config.json").read_text())
    added = sorted(config.get("added_tokens_decoder", {}).items(), key=lambda kv: int(kv[0]))
    for _, a in added:
        t = AddedToken(a["content"], single_word=a.get("single_word", False), lstrip=a.get("lstrip", False),
                       rstrip=a.get("rstrip", False), normalized=a.get("normalized", False),
                       special=a.get("special", False))
        (tok.add_special_tokens if a.get("special") else tok.add_tokens)([t])
    return tok


def optiq_jsonl(folder: Path, corpus_file: Path, *extra: str) -> list[dict]:
    r = run_optiq("tokenize", folder, "--jsonl", "--no-bos", *extra, "-f", corpus_file)
    if r.returncode != 0:
        raise AssertionError(f"optiq tokenize {folder} failed ({r.returncode}): {r.stderr}")
    return [json.loads(line) for line in r.stdout.splitlines()]


def main() -> None:
    f = Failures()
    work = work_dir("tokenizers_hf")
    corpus = json.loads((HERE / "tokenizer_corpus.json").read_text())
    corpus_file = work / "corpus.jsonl"
    corpus_file.write_text("".join(json.dumps(s, ensure_ascii=False) + "\n" for s in corpus))
    templates = SHARED / "models" / "templates"
    cases = {
        "smollm2 (tokenizer.json)": (templates / "smollm2-135m-instruct",
                                     lambda d: Tokenizer.from_file(str(d / "tokenizer.json"))),
        "mistral-v0.3 (tokenizer.json)": (templates / "mistral-7b-instruct-v0.3",
                                          lambda d: Tokenizer.from_file(str(d / "tokenizer.json"))),
        "qwen2.5 (vocab.json + merges.txt)": (SHARED / "models" / "qwen2.5-tokenizer", qwen2_from_vocab_merges),
    }
    summary = []
    for name, (folder, make) in cases.items():
        hf = make(folder)
        compared = mismatches = lossless = round_trips = 0
        for special in (True, False):
            hf.encode_special_tokens = not special
            got = optiq_jsonl(folder, corpus_file, *([] if special else ["--no-special"]))
            if not f.check(len(got) == len(corpus), f"{name}: {len(got)} results for {len(corpus)} texts"):
                continue
            for text, g in zip(corpus, got):
                want = hf.encode(text, add_special_tokens=False).ids
                compared += 1
                if not f.check(g["ids"] == want, f"{name} special={special} {json.dumps(text)[:70]}: "
                               f"optiq {g['ids'][:40]} hf {want[:40]}"):
                    mismatches += 1
                    continue
                decoded = hf.decode(want, skip_special_tokens=False)
                if not f.check(g["decoded"] == decoded, f"{name} decode {json.dumps(text)[:60]}: "
                               f"optiq {json.dumps(g['decoded'])[:100]} hf {json.dumps(decoded)[:100]}"):
                    mismatches += 1
                if not special and decoded == text:
                    lossless += 1
                    round_trips += g["decoded"] == text
        hf.encode_special_tokens = False
        r = run_optiq("tokenize", folder, "--ids", "Hello world")
        got_bos = json.loads(r.stdout) if r.returncode == 0 else r.stderr
        want_bos = hf.encode("Hello world", add_special_tokens=True).ids
        f.check(got_bos == want_bos, f"{name}: with special tokens optiq {got_bos} hf {want_bos}")
        summary.append(f"{name}: {compared} cases compared, {mismatches} mismatches; "
                       f"round trip {round_trips}/{lossless} where HF is lossless")
    for s in summary:
        print(s)
    f.finish("oracle_tokenizers_hf")


if __name__ == "__main__":
    main()
