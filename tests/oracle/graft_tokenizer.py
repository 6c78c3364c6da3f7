"""Copies the tokenizer of one GGUF into another: graft_tokenizer.py MODEL TOKENIZER_GGUF OUT.

The random-weight models of the engine oracle have no tokenizer of their own, and llama.cpp
needs one to load a model. This writes MODEL's metadata and tensors plus every tokenizer.*
key of TOKENIZER_GGUF, using gguf-py (the reference implementation of the format), so the
fixture does not depend on optiq's writer.
"""
import sys

import numpy as np
from gguf import GGUFReader, GGUFWriter, GGUFValueType


def field_value(field):
    t = field.types[0]
    if t == GGUFValueType.ARRAY:
        sub = field.types[1]
        if sub == GGUFValueType.STRING:
            return [bytes(field.parts[i]).decode("utf-8") for i in field.data], sub
        return [field.parts[i].tolist()[0] for i in field.data], sub
    if t == GGUFValueType.STRING:
        return bytes(field.parts[field.data[0]]).decode("utf-8"), None
    return field.parts[field.data[0]].tolist()[0], None


def main(model_path, tokenizer_path, out_path):
    model, tok = GGUFReader(model_path), GGUFReader(tokenizer_path)
    arch = field_value(model.fields["general.architecture"])[0]
    w = GGUFWriter(out_path, arch)
    for reader, keep in ((model, lambda k: not k.startswith("tokenizer.")),
                         (tok, lambda k: k.startswith("tokenizer."))):
        for key, field in reader.fields.items():
            if key.startswith("GGUF.") or key == "general.architecture" or not keep(key):
                continue
            value, sub = field_value(field)
            w.add_key_value(key, value, field.types[0], sub_type=sub)
    for t in model.tensors:
        shape = [int(x) for x in reversed(t.shape.tolist())]
        data = np.asarray(t.data)
        w.add_tensor(t.name, data.reshape(shape) if data.size == np.prod(shape) else data,
                     raw_shape=shape if data.size != np.prod(shape) else None, raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: graft_tokenizer.py MODEL.gguf TOKENIZER.gguf OUT.gguf")
    main(*sys.argv[1:])
