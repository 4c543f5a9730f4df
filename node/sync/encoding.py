"""The one canonical encoding of the project.

Canonical bytes are compact JSON with keys sorted, UTF-8, NFC text as given. Only dicts with str keys,
lists, str, int (within 64 bits), bool and None are allowed: floats are refused because their text form
is not stable across implementations. Hashes are SHA-256 of canonical bytes.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from .errors import EncodingError

_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1


def _check(value: Any) -> None:
    if value is None or isinstance(value, (str, bool)):
        return
    if isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            raise EncodingError(f"integer out of range: {value}")
        return
    if isinstance(value, list):
        for item in value:
            _check(item)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise EncodingError(f"non-string key: {key!r}")
            _check(item)
        return
    raise EncodingError(f"type not allowed in canonical encoding: {type(value).__name__}")


def canonical(value: Any) -> bytes:
    """Return the canonical bytes of `value` (refusing floats and other unstable types)."""
    _check(value)
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def decode(data: bytes | str) -> Any:
    """Parse canonical (or any) JSON bytes."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise EncodingError(f"malformed JSON: {exc}") from exc


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
