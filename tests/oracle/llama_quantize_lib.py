"""llama.cpp's own quantizer, `llama_model_quantize` from the prebuilt libllama that
node-llama-cpp ships (the same llama.cpp release as .cache/llama.cpp-src, whose include/llama.h
gives the parameter struct below), called through ctypes."""
from __future__ import annotations

import ctypes
import os
from pathlib import Path

import numpy as np

LIB_DIR = (Path(os.environ["OPTIQ_CACHE"]) / "node" / "node_modules" / "@node-llama-cpp" / "linux-x64"
           / "bins" / "linux-x64")

# llama_ftype numbers (include/llama.h) of the mixes the tests use.
FTYPES = {"F32": 0, "F16": 1, "Q4_0": 2, "Q4_1": 3, "Q8_0": 7, "Q5_0": 8, "Q5_1": 9, "Q2_K": 10,
          "Q3_K_S": 11, "Q3_K_M": 12, "Q3_K_L": 13, "Q4_K_S": 14, "Q4_K_M": 15, "Q5_K_S": 16,
          "Q5_K_M": 17, "Q6_K": 18, "Q2_K_S": 21, "IQ4_NL": 25, "IQ4_XS": 30, "BF16": 32}


class QuantizeParams(ctypes.Structure):
    _fields_ = [
        ("nthread", ctypes.c_int32),
        ("ftype", ctypes.c_int),
        ("output_tensor_type", ctypes.c_int),
        ("token_embedding_type", ctypes.c_int),
        ("allow_requantize", ctypes.c_bool),
        ("quantize_output_tensor", ctypes.c_bool),
        ("only_copy", ctypes.c_bool),
        ("pure", ctypes.c_bool),
        ("keep_split", ctypes.c_bool),
        ("dry_run", ctypes.c_bool),
        ("imatrix", ctypes.c_void_p),
        ("kv_overrides", ctypes.c_void_p),
        ("tt_overrides", ctypes.c_void_p),
        ("prune_layers", ctypes.c_void_p),
        ("max_buf_size", ctypes.c_size_t),
    ]


class TensorOverride(ctypes.Structure):
    _fields_ = [("pattern", ctypes.c_char_p), ("type", ctypes.c_int)]


class ImatrixData(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("data", ctypes.c_void_p), ("size", ctypes.c_size_t)]


_LOG_CB = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)


class LlamaQuantizer:
    def __init__(self) -> None:
        self.lib = ctypes.CDLL(str(LIB_DIR / "libllama.v0.5.0.so"))
        self.lib.llama_model_quantize_default_params.restype = QuantizeParams
        self.lib.llama_model_quantize.restype = ctypes.c_uint32
        self.lib.llama_model_quantize.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(QuantizeParams)]
        self.log: list[str] = []
        self._cb = _LOG_CB(lambda level, text, _ud: self.log.append(text.decode(errors="replace")))
        self.lib.llama_log_set(self._cb, None)
        self.lib.llama_backend_init()

    def quantize(self, src: Path, out: Path, mix: str, *, pure: bool = False,
                 tensor_types: list[tuple[str, int]] | None = None,
                 output_tensor_type: int | None = None, token_embedding_type: int | None = None,
                 imatrix: dict[str, np.ndarray] | None = None, nthread: int = 2) -> None:
        p = self.lib.llama_model_quantize_default_params()
        p.ftype = FTYPES[mix]
        p.nthread = nthread
        p.pure = pure
        if output_tensor_type is not None:
            p.output_tensor_type = output_tensor_type
        if token_embedding_type is not None:
            p.token_embedding_type = token_embedding_type
        keep = []  # buffers that must outlive the call
        if tensor_types:
            arr = (TensorOverride * (len(tensor_types) + 1))()
            for i, (pattern, t) in enumerate(tensor_types):
                b = pattern.encode()
                keep.append(b)
                arr[i] = TensorOverride(b, t)
            arr[len(tensor_types)] = TensorOverride(None, 0)
            keep.append(arr)
            p.tt_overrides = ctypes.cast(arr, ctypes.c_void_p)
        if imatrix:
            arr = (ImatrixData * (len(imatrix) + 1))()
            for i, (name, values) in enumerate(imatrix.items()):
                v = np.ascontiguousarray(values, dtype=np.float32)
                b = name.encode()
                keep += [v, b]
                arr[i] = ImatrixData(b, v.ctypes.data_as(ctypes.c_void_p), v.size)
            arr[len(imatrix)] = ImatrixData(None, None, 0)
            keep.append(arr)
            p.imatrix = ctypes.cast(arr, ctypes.c_void_p)
        self.log.clear()
        rc = self.lib.llama_model_quantize(str(src).encode(), str(out).encode(), ctypes.byref(p))
        if rc != 0:
            raise AssertionError(f"llama_model_quantize {src} {mix} failed: {''.join(self.log)[-2000:]}")
