#!/usr/bin/env python3
"""Writes the seed corpus for the fuzz targets: small hand-made GGUF and safetensors files,
valid ones and ones broken in one specific way each, so the fuzzer starts next to every check
the parsers make. The output is committed; rerun this after changing it:
    python3 fuzz/make_corpus.py
"""
import json
import pathlib
import struct

HERE = pathlib.Path(__file__).resolve().parent


def u32(x):
    return struct.pack("<I", x)


def u64(x):
    return struct.pack("<Q", x)


# ---- GGUF ----------------------------------------------------------------------------------

U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
SCALAR_FORMATS = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f",
                  BOOL: "<B", U64: "<Q", I64: "<q", F64: "<d"}
# ggml type ids
GF32, GF16, GQ4_0, GQ8_0, GBF16 = 0, 1, 2, 8, 30


def gstr(s):
    b = s if isinstance(s, bytes) else s.encode()
    return u64(len(b)) + b


def value(t, x):
    if t == STRING:
        return gstr(x)
    if t == ARRAY:
        elem_type, items = x
        return u32(elem_type) + u64(len(items)) + b"".join(value(elem_type, i) for i in items)
    return struct.pack(SCALAR_FORMATS[t], x)


def kv(key, t, x):
    return gstr(key) + u32(t) + value(t, x)


def tensor(name, shape, ggml_type, offset):
    return (gstr(name) + u32(len(shape)) + b"".join(u64(d) for d in shape) + u32(ggml_type)
            + u64(offset))


def gguf(kvs=(), tensors=(), data=b"", version=3, n_tensors=None, n_kv=None, alignment=32):
    head = (b"GGUF" + u32(version) + u64(len(tensors) if n_tensors is None else n_tensors)
            + u64(len(kvs) if n_kv is None else n_kv) + b"".join(kvs) + b"".join(tensors))
    return head + bytes(-len(head) % alignment) + data


def pattern(n):
    return bytes((i * 37 + 11) & 0xFF for i in range(n))


ARCH = kv("general.architecture", STRING, "llama")
# Two tensors, the second at the next 32-byte boundary: f32[4] (16 bytes) and f16[8, 2] (32).
MINIMAL_TENSORS = [tensor("a", [4], GF32, 0), tensor("b", [8, 2], GF16, 32)]
MINIMAL_DATA = pattern(16) + bytes(16) + pattern(32)
MINIMAL = gguf([ARCH, kv("general.name", STRING, "seed")], MINIMAL_TENSORS, MINIMAL_DATA)
NAN32 = struct.unpack("<f", struct.pack("<I", 0x7FC00001))[0]


def gguf_seeds():
    huge = 1 << 63
    return {
        # valid
        "valid_minimal": MINIMAL,
        "valid_v2": gguf([ARCH], MINIMAL_TENSORS, MINIMAL_DATA, version=2),
        "valid_empty": gguf(),
        "valid_all_value_types": gguf([
            kv("t.u8", U8, 200), kv("t.i8", I8, -5), kv("t.u16", U16, 60000),
            kv("t.i16", I16, -300), kv("t.u32", U32, 4_000_000_000), kv("t.i32", I32, -70000),
            kv("t.f32", F32, 1.5), kv("t.bool", BOOL, 1), kv("t.str", STRING, "héllo"),
            kv("t.u64", U64, 1 << 60), kv("t.i64", I64, -(1 << 60)), kv("t.f64", F64, 2.25),
            kv("t.nan", F32, NAN32),
            kv("t.arr_u8", ARRAY, (U8, [1, 2, 3])),
            kv("t.arr_str", ARRAY, (STRING, ["a", "", "ccc"])),
            kv("t.arr_arr", ARRAY, (ARRAY, [(I32, [1, -1]), (F32, [0.5]), (STRING, [])])),
        ]),
        "valid_alignment_64": gguf(
            [ARCH, kv("general.alignment", U32, 64)],
            [tensor("q4", [32, 2], GQ4_0, 0), tensor("q8", [32], GQ8_0, 64)],
            pattern(36) + bytes(28) + pattern(34), alignment=64),
        "valid_bf16_4d": gguf([], [tensor("w", [2, 2, 2, 2], GBF16, 0)], pattern(32)),
        "valid_zero_size_tensor": gguf([], [tensor("empty", [0], GF32, 0), tensor("a", [4], GF32, 0)],
                                       pattern(16)),
        # header
        "empty": b"",
        "magic_only": b"GGUF",
        "bad_magic": b"GGUG" + MINIMAL[4:],
        "version_1": gguf(version=1),
        "version_4": gguf(version=4),
        "version_big_endian": gguf(version=0x03000000),
        "truncated_counts": MINIMAL[:14],
        "truncated_kv": MINIMAL[:40],
        "truncated_tensor_info": MINIMAL[:len(MINIMAL) - len(MINIMAL_DATA) - 20],
        "truncated_data": MINIMAL[:-8],
        "huge_tensor_count": gguf([ARCH], n_tensors=huge),
        "huge_kv_count": gguf([ARCH], n_kv=(1 << 64) - 1),
        "huge_key_length": b"GGUF" + u32(3) + u64(0) + u64(1) + u64(huge) + b"key",
        "huge_string_length": b"GGUF" + u32(3) + u64(0) + u64(1) + gstr("k") + u32(STRING)
        + u64(huge - 1) + b"xyz",
        "huge_array_count": b"GGUF" + u32(3) + u64(0) + u64(1) + gstr("k") + u32(ARRAY) + u32(U64)
        + u64(1 << 62) + u64(7),
        "huge_nested_array_count": b"GGUF" + u32(3) + u64(0) + u64(1) + gstr("k") + u32(ARRAY)
        + u32(ARRAY) + u64(1 << 40) + u32(U8) + u64(0),
        # metadata values
        "unknown_value_type": gguf([kv("k", U8, 1)]).replace(u32(U8), u32(13), 1),
        "unknown_array_elem_type": gguf([kv("k", ARRAY, (U8, [1]))]).replace(
            u32(ARRAY) + u32(U8), u32(ARRAY) + u32(0xFFFFFFFF), 1),
        "nested_arrays_deep_ok": gguf([kv("k", ARRAY, nest(6))]),
        "nested_arrays_too_deep": gguf([kv("k", ARRAY, nest(12))]),
        "bool_not_0_or_1": gguf([kv("k", U8, 2)]).replace(u32(U8), u32(BOOL), 1),
        "empty_key": gguf([kv("", U8, 1)]),
        "duplicate_key": gguf([kv("k", U8, 1), kv("k", U32, 2)]),
        "alignment_zero": gguf([kv("general.alignment", U32, 0)]),
        "alignment_not_power_of_two": gguf([kv("general.alignment", U32, 48)]),
        "alignment_wrong_type": gguf([kv("general.alignment", U64, 32)]),
        "alignment_huge": gguf([kv("general.alignment", U32, 1 << 31)], [tensor("e", [0], GF32, 0)]),
        "alignment_huge_no_tensors": gguf([kv("general.alignment", U32, 1 << 31)]),
        # tensor infos
        "tensor_empty_name": gguf([], [tensor("", [4], GF32, 0)], pattern(16)),
        "tensor_name_64_bytes": gguf([], [tensor("n" * 64, [4], GF32, 0)], pattern(16)),
        "tensor_duplicate_name": gguf([], [tensor("a", [4], GF32, 0), tensor("a", [4], GF32, 32)],
                                      pattern(48)),
        "tensor_zero_dims": gguf([], [tensor("a", [], GF32, 0)], pattern(16)),
        "tensor_five_dims": gguf([], [tensor("a", [1, 1, 1, 1, 4], GF32, 0)], pattern(16)),
        "tensor_unknown_type": gguf([], [tensor("a", [4], 1000, 0)], pattern(16)),
        "tensor_retired_type": gguf([], [tensor("a", [32], 4, 0)], pattern(32)),
        "tensor_row_not_whole_blocks": gguf([], [tensor("a", [31], GQ4_0, 0)], pattern(32)),
        "tensor_dim_over_int64": gguf([], [tensor("a", [huge], GF32, 0)], pattern(16)),
        "tensor_element_count_overflow": gguf([], [tensor("a", [1 << 32, 1 << 32], GF32, 0)]),
        # Element count fits int64 but the byte size (x 4) does not fit uint64.
        "tensor_byte_size_overflow": gguf([], [tensor("a", [1 << 62], GF32, 0)], pattern(16)),
        "tensor_misaligned_offset": gguf([], [tensor("a", [4], GF32, 4)], pattern(32)),
        "tensor_offset_past_end": gguf([], [tensor("a", [4], GF32, 1 << 40)], pattern(16)),
        "tensor_data_past_end": gguf([], [tensor("a", [8], GF32, 0)], pattern(16)),
        "tensor_offset_wraps": gguf([], [tensor("a", [8], GF32, (1 << 64) - 32)], pattern(32)),
        "tensors_overlap": gguf([], [tensor("a", [16], GF32, 0), tensor("b", [4], GF32, 32)],
                                pattern(64)),
        "tensors_same_offset": gguf([], [tensor("a", [4], GF32, 0), tensor("b", [4], GF32, 0)],
                                    pattern(16)),
        # A zero-size tensor in a file that ends before its (padded) data section.
        "tensor_zero_size_no_data_section": gguf([], [tensor("e", [0], GF32, 0)])[:-4],
    }


def nest(depth):
    """An array value nested `depth` levels deep, innermost an array of one u8."""
    x = (U8, [7])
    for _ in range(depth - 1):
        x = (ARRAY, [x])
    return x


# ---- safetensors ---------------------------------------------------------------------------


def st(header, data=b"", header_len=None):
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    return u64(len(h) if header_len is None else header_len) + h + data


def entry(dtype, shape, begin, end):
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


DTYPES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2,
          "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "F64": 8, "I64": 8, "U64": 8}
TWO = {"a": entry("F32", [2, 2], 0, 16), "b": entry("BF16", [3], 16, 22)}


def one(e, data_len):
    return st({"t": e}, pattern(data_len))


def safetensors_seeds():
    all_dtypes, offset = {}, 0
    for name, size in DTYPES.items():
        all_dtypes[name.lower()] = entry(name, [2], offset, offset + 2 * size)
        offset += 2 * size
    padded = json.dumps(TWO).encode()
    return {
        # valid
        "valid_minimal": st({"__metadata__": {"format": "pt"}, **TWO}, pattern(22)),
        "valid_empty": st({}),
        "valid_all_dtypes": st(all_dtypes, pattern(offset)),
        "valid_scalar": one(entry("F64", [], 0, 8), 8),
        "valid_zero_size": st({"z": entry("F32", [0, 5], 0, 0), "a": entry("U8", [3], 0, 3)},
                              pattern(3)),
        "valid_padded_header": st(padded + b" " * (-len(padded) % 8), pattern(22)),
        # header length and JSON
        "too_short": b"\x05\0\0\0",
        "header_length_past_eof": st({}, header_len=1000),
        "header_length_huge": st({}, header_len=(1 << 64) - 1),
        "header_length_over_limit": st({}, header_len=100_000_001),
        "header_length_zero": st(b""),
        "invalid_json": st(b'{"a": {"dtype": "F32",'),
        "json_trailing_garbage": st(b'{"a": 1} x'),
        "non_object_header": st(b"[1, 2]"),
        "non_object_header_string": st(b'"{}"'),
        "invalid_utf8_name": st(b'{"\xff\xfe": {}}'),
        "deep_nesting": st(b'{"a": ' + b"[" * 400 + b"]" * 400 + b"}"),
        "number_overflow": st(b'{"a": {"dtype": "F32", "shape": [1e400], "data_offsets": [0, 4]}}',
                              pattern(4)),
        "duplicate_key": st(b'{"a": ' + json.dumps(entry("U8", [1], 0, 1)).encode() + b', "a": '
                            + json.dumps(entry("U8", [2], 0, 2)).encode() + b"}", pattern(2)),
        # metadata
        "metadata_not_object": st({"__metadata__": ["x"]}),
        "metadata_value_not_string": st({"__metadata__": {"k": 1}}),
        # tensor entries
        "entry_not_object": st({"t": [1]}),
        "bad_dtype": one(entry("F128", [1], 0, 16), 16),
        "dtype_lowercase": one(entry("f32", [1], 0, 4), 4),
        "dtype_not_string": one(entry(7, [1], 0, 4), 4),
        "missing_dtype": st({"t": {"shape": [1], "data_offsets": [0, 4]}}, pattern(4)),
        "missing_shape": st({"t": {"dtype": "F32", "data_offsets": [0, 4]}}, pattern(4)),
        "shape_not_array": one(entry("F32", 1, 0, 4), 4),
        "shape_negative": one(entry("F32", [-1], 0, 4), 4),
        "shape_float": one(entry("F32", [1.0], 0, 4), 4),
        "shape_overflow": one(entry("F32", [1 << 40, 1 << 40], 0, 4), 4),
        "shape_zero_times_huge": one(entry("F32", [0, 1 << 63, 1 << 63], 0, 0), 0),
        "offsets_missing": st({"t": {"dtype": "F32", "shape": [1]}}, pattern(4)),
        "offsets_three": st({"t": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4, 8]}},
                            pattern(8)),
        "offsets_negative": one(entry("F32", [1], -4, 0), 4),
        "offsets_begin_after_end": one(entry("F32", [1], 8, 4), 8),
        "offsets_out_of_bounds": one(entry("F32", [4], 0, 16), 8),
        "offsets_max_u64": one(entry("U8", [1], (1 << 64) - 1, (1 << 64) - 1), 1),
        "offsets_past_u64": one(entry("U8", [1], 1 << 64, (1 << 64) + 1), 1),
        "size_mismatch": one(entry("F32", [3], 0, 16), 16),
        "overlapping": st({"a": entry("F32", [2], 0, 8), "b": entry("F32", [2], 4, 12)},
                          pattern(12)),
        "gap": st({"a": entry("F32", [1], 0, 4), "b": entry("F32", [1], 8, 12)}, pattern(12)),
        "trailing_bytes": one(entry("F32", [1], 0, 4), 12),
        "first_not_at_zero": one(entry("F32", [1], 4, 8), 8),
    }


def write(directory, suffix, seeds):
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*" + suffix):
        stale.unlink()
    for name, data in seeds.items():
        (directory / (name + suffix)).write_bytes(data)


if __name__ == "__main__":
    write(HERE / "corpus" / "gguf", ".gguf", gguf_seeds())
    write(HERE / "corpus" / "safetensors", ".safetensors", safetensors_seeds())
