#!/usr/bin/env python3
"""Writes the seed corpus of the tokenizer.json fuzz target: small hand-made tokenizer.json
files, valid ones for each pipeline the loader supports and ones broken in one specific way
each, so the fuzzer starts next to every check the loader makes. The output is committed;
rerun this after changing it:
    python3 fuzz/make_tokenizer_json_corpus.py
"""
import copy
import json
import pathlib

OUT = pathlib.Path(__file__).resolve().parent / "corpus" / "tokenizer_json"
SPACE = "\u2581"  # ▁, SentencePiece's escaped space
# Seeds written as they are rather than as a JSON value.
RAW = {"not_json", "empty", "vocab_duplicate_keys"}


def byte_level_alphabet():
    """GPT-2's byte -> printable character map that byte-level vocabularies are written in."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def merges_for(words):
    """Left-to-right merges that build each word from its characters, in first-seen order."""
    merges = []
    for w in words:
        for i in range(2, len(w) + 1):
            pair = [w[: i - 1], w[i - 1]]
            if pair not in merges:
                merges.append(pair)
    return merges


def vocab_of(specials, alphabet, merges):
    tokens = list(specials) + list(alphabet) + ["".join(m) for m in merges]
    vocab = {}
    for t in tokens:
        vocab.setdefault(t, len(vocab))
    return vocab


def added(token_id, content, special=True, lstrip=False, rstrip=False, normalized=False):
    return {"id": token_id, "content": content, "single_word": False, "lstrip": lstrip,
            "rstrip": rstrip, "normalized": normalized, "special": special}


def template(first, ids):
    """A TemplateProcessing post-processor that puts `first` (id `ids`) before the text."""
    return {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": first, "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {first: {"id": first, "ids": [ids], "tokens": [first]}}}


# GPT-2 style: byte-level alphabet, merges as pairs, ChatML added tokens.
BL = byte_level_alphabet()
BL_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
BL_MERGES = merges_for(["Hello", "\u0120world", "\u0120hi", "user", "\u0120the", "42", "\u010a\u010a"])
BYTE_LEVEL = {
    "version": "1.0",
    "truncation": None,
    "padding": None,
    "added_tokens": [added(i, t) for i, t in enumerate(BL_SPECIALS)],
    "normalizer": None,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                      "use_regex": True},
    "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False,
                       "use_regex": True},
    "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
    "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
              "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
              "ignore_merges": False, "vocab": vocab_of(BL_SPECIALS, BL, BL_MERGES),
              "merges": BL_MERGES},
}

# Qwen2 style: NFC, a Split regex then ByteLevel without its own regex, merges as "a b" strings.
QWEN_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
              r"|\s*[\r\n]+|\s+(?!\S)|\s+")
SPLIT_BYTE_LEVEL = copy.deepcopy(BYTE_LEVEL)
SPLIT_BYTE_LEVEL["normalizer"] = {"type": "NFC"}
SPLIT_BYTE_LEVEL["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
    {"type": "Split", "pattern": {"Regex": QWEN_REGEX}, "behavior": "Isolated", "invert": False},
    {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]}
SPLIT_BYTE_LEVEL["post_processor"] = template("<|endoftext|>", 0)
SPLIT_BYTE_LEVEL["model"]["merges"] = [" ".join(m) for m in BL_MERGES]
SPLIT_BYTE_LEVEL["model"]["ignore_merges"] = True

# SentencePiece style (Llama 2, Mistral): <0xNN> byte fallback, ▁ for spaces.
SP_SPECIALS = ["<unk>", "<s>", "</s>"]
SP_BYTES = [f"<0x{b:02X}>" for b in range(256)]
SP_ALPHABET = [SPACE] + [chr(c) for c in range(ord("a"), ord("z") + 1)] + list("HIW,!'.:+=")
SP_MERGES = merges_for([SPACE + "Hello", SPACE + "world", SPACE + "hi", "user", SPACE + "the"])
METASPACE_NORMALIZER = {
    "added_tokens": [added(i, t) for i, t in enumerate(SP_SPECIALS)],
    "normalizer": {"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": SPACE},
        {"type": "Replace", "pattern": {"String": " "}, "content": SPACE}]},
    "pre_tokenizer": None,
    "post_processor": template("<s>", 1),
    "decoder": {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": SPACE}, "content": " "},
        {"type": "ByteFallback"}, {"type": "Fuse"},
        {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
    "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "fuse_unk": True,
              "byte_fallback": True, "ignore_merges": False,
              "vocab": vocab_of(SP_SPECIALS + SP_BYTES, SP_ALPHABET, SP_MERGES),
              "merges": SP_MERGES},
}

# Newer SentencePiece style: a Metaspace pre-tokenizer and decoder instead of the normalizer.
METASPACE = copy.deepcopy(METASPACE_NORMALIZER)
METASPACE["normalizer"] = None
METASPACE["pre_tokenizer"] = {"type": "Metaspace", "replacement": SPACE, "prepend_scheme": "first",
                              "split": False}
METASPACE["decoder"] = {"type": "Metaspace", "replacement": SPACE, "prepend_scheme": "first",
                        "split": False}


DELETE = object()


def with_changes(base, *changes):
    """A deep copy of base with each (path, value) set; a value of DELETE removes the key."""
    doc = copy.deepcopy(base)
    for path, value in changes:
        *parents, last = path
        node = doc
        for key in parents:
            node = node[key]
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
    return doc


def seeds():
    n_bl = len(BYTE_LEVEL["model"]["vocab"])
    return {
        # valid
        "valid_byte_level": BYTE_LEVEL,
        "valid_split_byte_level_string_merges": SPLIT_BYTE_LEVEL,
        "valid_metaspace_normalizer_byte_fallback": METASPACE_NORMALIZER,
        "valid_metaspace_pre_tokenizer": METASPACE,
        "valid_metaspace_prepend_always_split": with_changes(
            METASPACE, (["pre_tokenizer", "prepend_scheme"], "always"),
            (["pre_tokenizer", "split"], True), (["decoder", "prepend_scheme"], "never")),
        "valid_metaspace_legacy_add_prefix_space": with_changes(
            METASPACE, (["pre_tokenizer"], {"type": "Metaspace", "replacement": SPACE,
                                            "add_prefix_space": True}),
            (["decoder"], {"type": "Metaspace", "replacement": SPACE, "add_prefix_space": True})),
        "valid_added_tokens_strip": with_changes(BYTE_LEVEL, (["added_tokens"], [
            added(0, "<|endoftext|>"),
            added(1, "<|im_start|>", lstrip=True),
            added(2, "<|im_end|>", rstrip=True),
            added(n_bl, "<tool>", special=False, lstrip=True, rstrip=True),
            added(n_bl + 5, " hi", special=False, normalized=True),
            added(3, "!", special=False)])),
        "valid_normalizer_sequence_digits": with_changes(
            BYTE_LEVEL,
            (["normalizer"], {"type": "Sequence", "normalizers": [
                {"type": "NFC"},
                {"type": "Replace", "pattern": {"String": "``"}, "content": "\""},
                {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": " "}]}]}),
            (["pre_tokenizer"], {"type": "Sequence", "pretokenizers": [
                {"type": "Digits", "individual_digits": True},
                {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                 "use_regex": True}]})),
        "valid_split_behaviors": with_changes(BYTE_LEVEL, (["pre_tokenizer"], {
            "type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"String": "|"}, "behavior": "Removed", "invert": False},
                {"type": "Split", "pattern": {"Regex": "\\s+"}, "behavior": "MergedWithNext",
                 "invert": False},
                {"type": "Split", "pattern": {"Regex": "[,.!]"}, "behavior": "MergedWithPrevious",
                 "invert": False},
                {"type": "Split", "pattern": {"Regex": "\\p{N}"}, "behavior": "Contiguous",
                 "invert": True},
                {"type": "Digits", "individual_digits": False},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                 "use_regex": False}]})),
        "valid_unk_fuse_no_byte_fallback": with_changes(
            METASPACE_NORMALIZER, (["model", "byte_fallback"], False),
            (["model", "vocab"], vocab_of(SP_SPECIALS, SP_ALPHABET, SP_MERGES))),
        "valid_sparse_ids": with_changes(BYTE_LEVEL, (["model", "vocab"], {"a": 0, "b": 7, "ab": 300}),
                                         (["model", "merges"], [["a", "b"]])),
        "valid_no_pipeline": {"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2},
                                        "merges": ["a b"]}},
        # the file
        "not_json": "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0,",
        "empty": "",
        "top_level_array": [],
        "top_level_string": "BPE",
        # the model
        "model_missing": with_changes(BYTE_LEVEL, (["model"], DELETE)),
        "model_not_object": with_changes(BYTE_LEVEL, (["model"], "BPE")),
        "model_wordpiece": with_changes(BYTE_LEVEL, (["model", "type"], "WordPiece")),
        "model_type_number": with_changes(BYTE_LEVEL, (["model", "type"], 1)),
        "model_dropout": with_changes(BYTE_LEVEL, (["model", "dropout"], 0.1)),
        "model_continuing_subword_prefix": with_changes(
            BYTE_LEVEL, (["model", "continuing_subword_prefix"], "##")),
        "model_flag_not_bool": with_changes(BYTE_LEVEL, (["model", "byte_fallback"], "yes")),
        "model_unk_not_string": with_changes(BYTE_LEVEL, (["model", "unk_token"], 0)),
        # the vocabulary
        "vocab_missing": with_changes(BYTE_LEVEL, (["model", "vocab"], DELETE)),
        "vocab_array": with_changes(BYTE_LEVEL, (["model", "vocab"], ["a", "b"])),
        "vocab_id_negative": with_changes(BYTE_LEVEL, (["model", "vocab"], {"a": -1}),
                                     (["model", "merges"], [])),
        "vocab_id_float": with_changes(BYTE_LEVEL, (["model", "vocab"], {"a": 1.5}),
                                     (["model", "merges"], [])),
        "vocab_id_string": with_changes(BYTE_LEVEL, (["model", "vocab"], {"a": "0"}),
                                     (["model", "merges"], [])),
        "vocab_id_2_31": with_changes(BYTE_LEVEL, (["model", "vocab"], {"a": 1 << 31}),
                                     (["model", "merges"], [])),
        "vocab_id_2_64": with_changes(BYTE_LEVEL, (["model", "vocab"], {"a": 1 << 64}),
                                     (["model", "merges"], [])),
        "vocab_too_large": with_changes(BYTE_LEVEL, (["model", "vocab"], {"a": 1 << 24}),
                                     (["model", "merges"], [])),
        "vocab_duplicate_ids": with_changes(BYTE_LEVEL, (["model", "vocab"], {"a": 0, "b": 0, "ab": 1}),
                                            (["model", "merges"], [["a", "b"]])),
        "vocab_duplicate_keys": '{"model": {"type": "BPE", "vocab": {"a": 0, "a": 1, "b": 2}, '
                                '"merges": [["a", "b"]]}}',
        "vocab_empty_token": with_changes(BYTE_LEVEL, (["model", "vocab"], {"": 0, "a": 1}),
                                          (["model", "merges"], [" a", "a ", " "])),
        # merges
        "merges_missing": with_changes(BYTE_LEVEL, (["model", "merges"], DELETE)),
        "merges_object": with_changes(BYTE_LEVEL, (["model", "merges"], {"a": "b"})),
        "merges_three_parts": with_changes(BYTE_LEVEL, (["model", "merges"], [["H", "e", "l"]])),
        "merges_numbers": with_changes(BYTE_LEVEL, (["model", "merges"], [[1, 2]])),
        "merges_no_space": with_changes(BYTE_LEVEL, (["model", "merges"], ["He", "H e l"])),
        "merges_unknown_tokens": with_changes(BYTE_LEVEL, (["model", "merges"], [["x\u00e9", "q"]])),
        # added tokens
        "added_tokens_object": with_changes(BYTE_LEVEL, (["added_tokens"], {"0": "<s>"})),
        "added_token_without_id": with_changes(BYTE_LEVEL, (["added_tokens"], [{"content": "<s>"}])),
        "added_token_id_negative": with_changes(BYTE_LEVEL, (["added_tokens"], [added(-1, "<s>")])),
        "added_token_id_too_large": with_changes(BYTE_LEVEL, (["added_tokens"], [added(1 << 24, "<s>")])),
        "added_token_content_number": with_changes(BYTE_LEVEL, (["added_tokens"], [added(0, 7)])),
        "added_token_empty": with_changes(BYTE_LEVEL, (["added_tokens"], [added(0, "")])),
        "added_token_flag_not_bool": with_changes(
            BYTE_LEVEL, (["added_tokens"], [dict(added(0, "<s>"), lstrip=1)])),
        # normalizer, pre-tokenizer, decoder
        "normalizer_unknown": with_changes(BYTE_LEVEL, (["normalizer"], {"type": "NFKC"})),
        "normalizer_string": with_changes(BYTE_LEVEL, (["normalizer"], "NFC")),
        "normalizer_sequence_without_list": with_changes(BYTE_LEVEL, (["normalizer"], {"type": "Sequence"})),
        "normalizer_replace_regex": with_changes(BYTE_LEVEL, (["normalizer"], {
            "type": "Replace", "pattern": {"Regex": " +"}, "content": " "})),
        "pre_tokenizer_bad_regex": with_changes(BYTE_LEVEL, (["pre_tokenizer"], {
            "type": "Split", "pattern": {"Regex": "(\\p{L"}, "behavior": "Isolated"})),
        "pre_tokenizer_pattern_string": with_changes(BYTE_LEVEL, (["pre_tokenizer"], {
            "type": "Split", "pattern": " ", "behavior": "Isolated"})),
        "pre_tokenizer_unknown_behavior": with_changes(BYTE_LEVEL, (["pre_tokenizer"], {
            "type": "Split", "pattern": {"String": " "}, "behavior": "Merged"})),
        "pre_tokenizer_unknown": with_changes(BYTE_LEVEL, (["pre_tokenizer"], {"type": "Whitespace"})),
        "pre_tokenizer_prepend_scheme_unknown": with_changes(
            METASPACE, (["pre_tokenizer", "prepend_scheme"], "sometimes")),
        "pre_tokenizer_metaspace_empty_replacement": with_changes(
            METASPACE, (["pre_tokenizer", "replacement"], ""), (["decoder", "replacement"], "")),
        "decoder_unknown": with_changes(BYTE_LEVEL, (["decoder"], {"type": "WordPiece"})),
        "decoder_strip_negative": with_changes(
            METASPACE_NORMALIZER, (["decoder", "decoders", 3, "start"], -1)),
        # post-processor
        "post_processor_sequence": with_changes(BYTE_LEVEL, (["post_processor"], {
            "type": "Sequence", "processors": [{"type": "ByteLevel"}, template("<|im_start|>", 1)]})),
    }


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.json"):
        old.unlink()
    for name, doc in seeds().items():
        text = doc if isinstance(doc, str) and name in RAW else json.dumps(doc, ensure_ascii=False)
        (OUT / f"{name}.json").write_text(text, encoding="utf-8")

if __name__ == "__main__":
    main()
