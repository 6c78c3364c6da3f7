"""The environment Hugging Face transformers renders chat templates in, rebuilt for the oracles:
an ImmutableSandboxedEnvironment with trim_blocks, lstrip_blocks and the loopcontrols
extension; a `tojson` filter that is json.dumps with ensure_ascii=False and the
indent/separators/sort_keys arguments; the globals raise_exception and strftime_now (reading
FIXED_DATE, which the oracles also pass to optiq as OPTIQ_FIXED_DATE); and the tokenizer's
special_tokens_map as transformers builds it."""
from __future__ import annotations

import json
from datetime import datetime

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

FIXED_DATE = "2024-07-26T09:30:00"
TOKEN_ATTRS = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"]


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(format):
    return datetime.fromisoformat(FIXED_DATE).strftime(format)


ENV = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
ENV.filters["tojson"] = tojson
ENV.globals["raise_exception"] = raise_exception
ENV.globals["strftime_now"] = strftime_now


def token_text(v):
    """A special token as a string (tokenizer_config.json may hold an AddedToken dict)."""
    return v["content"] if isinstance(v, dict) else v


def special_tokens(*configs: dict) -> dict:
    """transformers' special_tokens_map: set (truthy) tokens only, later files winning."""
    out: dict = {}
    for cfg in configs:
        for attr in TOKEN_ATTRS:
            if attr in cfg and token_text(cfg[attr]):
                out[attr] = token_text(cfg[attr])
        extra = [token_text(t) for t in cfg.get("additional_special_tokens") or []]
        if extra:
            out["additional_special_tokens"] = extra
    return out
