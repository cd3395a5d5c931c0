"""The JSON the changelog and the store keep records in (``gmv.streams.core.journal``), and the codecs of
the domains' plain values."""

from __future__ import annotations

import json
from typing import Any

import pydantic_core

from gmv.streams.state.store import Codec


def encode_json(doc: Any) -> bytes:
    """Compact JSON, in Rust; json.dumps for anything Rust refuses (a lone surrogate, which validated
    input never holds)."""
    try:
        return pydantic_core.to_json(doc)
    except ValueError:
        return json.dumps(doc, separators=(",", ":")).encode()


def decode_json(raw: bytes) -> Any:
    try:
        return pydantic_core.from_json(raw)
    except ValueError:  # written by encode_json's fallback (json.dumps escapes what Rust refuses)
        return json.loads(raw)


# The names the journal's first format used.
_encode, _decode = encode_json, decode_json

TEXT: Codec[str] = Codec(lambda s: s.encode("utf-8", "surrogatepass"), lambda b: b.decode("utf-8", "surrogatepass"))
FLAG: Codec[int] = Codec(lambda _: b"1", lambda _: 1)


def record_codec(cls: type) -> Codec:
    """A NamedTuple of plain fields as its JSON array."""
    return Codec(lambda r: encode_json(tuple(r)), lambda b: cls(*decode_json(b)))
