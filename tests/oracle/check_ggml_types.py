"""Every ggml tensor type gguf-py knows: gguf-py writes a file holding one tensor of each (raw
bytes of the size gguf-py computes), and optiq must open it and report the same type name,
shape and byte size. This checks optiq's block-geometry table against an independent one."""
from __future__ import annotations

import numpy as np
import gguf

from oracle_util import Failures, info_json, work_dir


# gguf 0.19.0 on PyPI still sizes Q8_1 with two f32 scales (40 bytes) and cannot write the
# 36-byte blocks ggml has used since 2023 (two f16 scales, ggml-common.h block_q8_1; the gguf-py
# in the llama.cpp release node-llama-cpp pins agrees). Q8_1 is a dot-product scratch type that
# never appears in model files; tests/ggml_type_test.cpp pins its size instead.
SKIP = {"Q8_1"}


def main() -> None:
    out = work_dir("ggml_types") / "all_types.gguf"
    writer = gguf.GGUFWriter(str(out), "llama")
    expected = {}
    for qtype, (block_elems, block_bytes) in gguf.GGML_QUANT_SIZES.items():
        if qtype.name in SKIP:
            continue
        row = block_elems * 2  # two blocks per row, three rows
        n_bytes = 3 * 2 * block_bytes
        name = f"t_{qtype.name.lower()}"
        data = np.arange(n_bytes, dtype=np.uint8).reshape(3, 2 * block_bytes)
        writer.add_tensor(name, data, raw_dtype=qtype)  # byte shape -> element shape (3, row)
        expected[name] = (qtype.name.lower(), [row, 3], n_bytes)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    f = Failures()
    got = {t["name"]: t for t in info_json(out)["tensors"]}
    f.check(set(got) == set(expected), f"tensor names differ: {sorted(set(got) ^ set(expected))}")
    for name, (type_name, shape, n_bytes) in expected.items():
        t = got.get(name)
        if not f.check(t is not None, f"{name} missing"):
            continue
        f.check(t["type"].lower() == type_name, f"{name}: optiq type {t['type']}, gguf-py {type_name}")
        f.check(t["shape"] == shape, f"{name}: optiq shape {t['shape']}, gguf-py {shape}")
        f.check(t["bytes"] == n_bytes, f"{name}: optiq {t['bytes']} bytes, gguf-py {n_bytes}")
    f.finish("oracle_ggml_types")


if __name__ == "__main__":
    main()
