"""oracle_gguf_py_readers: gguf-py's GGUFReader and `optiq info --json --metadata` must agree
on every file optiq writes, and optiq's float conversions of a GGUF must carry the data over
exactly.

Files: stories260K (the original, and optiq's f32/f16/bf16 converts of it) and two converted
random HF models (make_hf_model.py). For each: every metadata key, its value type (and array
element type) and value; every tensor's name, shape (ggml order), ggml type, byte size and
absolute data offset, in file order; tensor data aligned. For the converts of stories260K: the
metadata is the original's plus general.file_type/quantization_version, and the tensor data is
the original's bytes (f32) or gguf-py's own f16/bf16 encoding of them (2-D weights; 1-D stays
f32).
"""
from __future__ import annotations

import sys
from pathlib import Path

import gguf
import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import GGUFValueType as V

sys.path.insert(0, str(Path(__file__).resolve().parent))
import converter_expectations as cx  # noqa: E402
from make_hf_model import make_model  # noqa: E402
from oracle_util import STORIES, Failures, convert, info_json, work_dir  # noqa: E402

fails = Failures()
check = fails.check

# optiq's JSON spells value types the way the GGUF spec's type table names them.
TYPE_NAMES = {V.UINT8: "u8", V.INT8: "i8", V.UINT16: "u16", V.INT16: "i16", V.UINT32: "u32",
              V.INT32: "i32", V.FLOAT32: "f32", V.BOOL: "bool", V.STRING: "string",
              V.ARRAY: "array", V.UINT64: "u64", V.INT64: "i64", V.FLOAT64: "f64"}


def reader_metadata(reader: gguf.GGUFReader) -> dict[str, gguf.ReaderField]:
    # GGUFReader also exposes the header counts as pseudo-fields named GGUF.*.
    return {k: f for k, f in reader.fields.items() if not k.startswith("GGUF.")}


def same_value(a, b) -> bool:
    """Equal and of the same kind: 1 is not True, 1.0 is compared exactly."""
    if isinstance(a, list) or isinstance(b, list):
        return isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and all(
            same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def compare_with_info(tag: str, path: Path) -> gguf.GGUFReader:
    reader = gguf.GGUFReader(path)
    info = info_json(path)
    fields = reader_metadata(reader)
    meta = info.get("metadata", {})
    check(set(meta) == set(fields), f"{tag}: metadata keys differ: only optiq {sorted(set(meta) - set(fields))}, "
          f"only gguf-py {sorted(set(fields) - set(meta))}")
    for key, f in fields.items():
        m = meta.get(key)
        if not check(m is not None, f"{tag}: optiq info lacks key {key}"):
            continue
        check(m["type"] == TYPE_NAMES[f.types[0]], f"{tag}: {key} type {m['type']} vs gguf-py {f.types[0].name}")
        if f.types[0] == V.ARRAY:
            check(m.get("element_type") == TYPE_NAMES[f.types[-1]],
                  f"{tag}: {key} element type {m.get('element_type')} vs gguf-py {f.types[-1].name}")
        else:
            check("element_type" not in m, f"{tag}: {key} is not an array but has an element_type")
        check(same_value(m["value"], f.contents()), f"{tag}: {key} value differs: optiq {str(m['value'])[:200]} "
              f"vs gguf-py {str(f.contents())[:200]}")

    tensors = info.get("tensors", [])
    check([t["name"] for t in tensors] == [t.name for t in reader.tensors],
          f"{tag}: tensor names/order differ")
    align_field = reader.fields.get(gguf.Keys.General.ALIGNMENT)
    align = align_field.contents() if align_field else gguf.GGUF_DEFAULT_ALIGNMENT
    for mine, theirs in zip(tensors, reader.tensors):
        n = theirs.name
        check(mine["shape"] == [int(d) for d in theirs.shape], f"{tag}: {n} shape {mine['shape']} vs {list(theirs.shape)}")
        check(mine["type"].upper() == theirs.tensor_type.name, f"{tag}: {n} type {mine['type']} vs {theirs.tensor_type.name}")
        check(mine["bytes"] == theirs.n_bytes, f"{tag}: {n} bytes {mine['bytes']} vs {theirs.n_bytes}")
        check(mine["offset"] == theirs.data_offset, f"{tag}: {n} offset {mine['offset']} vs {theirs.data_offset}")
        check(theirs.data_offset % align == 0, f"{tag}: {n} data at {theirs.data_offset} is not {align}-aligned")
    return reader


def check_gguf_convert(tag: str, original: gguf.GGUFReader, converted: gguf.GGUFReader, outtype: str) -> None:
    """A GGUF -> GGUF convert keeps metadata and tensors; only float encodings change."""
    before, after = reader_metadata(original), reader_metadata(converted)
    added = {gguf.Keys.General.FILE_TYPE: int(cx.FILE_TYPES[outtype]),
             gguf.Keys.General.QUANTIZATION_VERSION: gguf.GGML_QUANT_VERSION}
    check(set(after) == set(before) | set(added), f"{tag}: keys changed: lost {sorted(set(before) - set(after))}, "
          f"gained {sorted(set(after) - set(before) - set(added))}")
    for key, f in before.items():
        if key in after and key not in added:
            g = after[key]
            check(g.types == f.types and same_value(g.contents(), f.contents()), f"{tag}: {key} changed")
    for key, value in added.items():
        g = after.get(key)
        check(g is not None and g.types == [V.UINT32] and g.contents() == value,
              f"{tag}: {key} should be u32 {value}, is {g and (g.types, g.contents())}")

    got = {t.name: t for t in converted.tensors}
    check(sorted(got) == sorted(t.name for t in original.tensors), f"{tag}: tensor set changed")
    for t in original.tensors:
        c = got.get(t.name)
        if c is None:
            continue
        check(list(c.shape) == list(t.shape), f"{tag}: {t.name} shape changed")
        values = np.asarray(t.data, dtype=np.float32)
        qtype = cx.out_qtype(t.name, len(t.shape), outtype)
        if not check(c.tensor_type == qtype, f"{tag}: {t.name} type {c.tensor_type.name}, want {qtype.name}"):
            continue
        if qtype == Q.F32:  # the round trip: the very same bytes
            ok = c.data.tobytes() == t.data.tobytes()
        else:
            ok = c.data.tobytes() == cx.encode(values, qtype)
        check(ok, f"{tag}: {t.name} data differs from {'the original' if qtype == Q.F32 else 'gguf-py ' + qtype.name}")


def main() -> None:
    work = work_dir("gguf_readers")
    original = compare_with_info("stories260K", STORIES)
    for outtype in ("f32", "f16", "bf16"):
        out = convert(STORIES, work / f"stories260K-{outtype}.gguf", outtype)
        converted = compare_with_info(f"stories260K/{outtype}", out)
        check_gguf_convert(f"stories260K/{outtype}", original, converted, outtype)
    for variant, outtype in (("gemma3", "bf16"), ("llama3_scaled", "f16")):
        model = make_model(variant, work / "hf" / variant)
        out = convert(model.dir, work / f"{variant}-{outtype}.gguf", outtype)
        compare_with_info(f"{variant}/{outtype}", out)
    fails.finish("oracle_gguf_py_readers")


if __name__ == "__main__":
    main()
