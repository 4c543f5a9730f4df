"""Ed25519 keys used for encryption: the standard conversion to X25519 (as libsodium does it).

Every replica already has one Ed25519 key (it signs changes) and the others know its public half from the
key registry or the pinned hub. A bundle for a USB stick is encrypted to that same key, converted:

- public:  the Montgomery u of the Edwards point, u = (1 + y) / (1 - y) mod 2^255 - 19, where y is the
  32-byte public key read little-endian without its sign bit. Invalid keys are refused: a y that is not
  canonical (y >= p), a y with no x on the curve, a point of small order, or one outside the prime-order
  subgroup (crypto_sign_ed25519_pk_to_curve25519 refuses the same).
- private: the first 32 bytes of SHA-512 of the 32-byte seed, clamped (the Ed25519 secret scalar).

The X25519 public key computed from the converted private key equals the converted public key.

`seal_key` / `open_key` are the ECIES key agreement of bundles (node.sync.bundle): an ephemeral X25519 key,
HKDF-SHA256 over the shared secret (salt = ephemeral public || recipient public, info = INFO), ChaCha20-Poly1305.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

P = 2**255 - 19
D = (-121665 * pow(121666, P - 2, P)) % P
L = 2**252 + 27742317777372353535851937790883648493  # order of the prime subgroup
SQRT_M1 = pow(2, (P - 1) // 4, P)
INFO = b"motcua-bundle-v1"
_IDENTITY = (0, 1, 1, 0)  # extended coordinates (X, Y, Z, T)


class InvalidPublicKey(ValueError):
    """The bytes are not an Ed25519 public key usable for encryption."""


def _recover_x(y: int, sign: int) -> int | None:
    """x of the Edwards point with this y and sign bit (RFC 8032, 5.1.3), or None when there is none."""
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P:
        return None
    if (x & 1) != sign:
        x = P - x
    return x


def _add(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    A = (a[1] - a[0]) * (b[1] - b[0]) % P
    B = (a[1] + a[0]) * (b[1] + b[0]) % P
    C = 2 * a[3] * b[3] * D % P
    Dd = 2 * a[2] * b[2] % P
    E, F, G, H = B - A, Dd - C, Dd + C, B + A
    return (E * F % P, G * H % P, F * G % P, E * H % P)


def _mul(s: int, point: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    result = _IDENTITY
    while s > 0:
        if s & 1:
            result = _add(result, point)
        point = _add(point, point)
        s >>= 1
    return result


def _is_identity(point: tuple[int, int, int, int]) -> bool:
    x, y, z, _ = point
    return x % P == 0 and (y - z) % P == 0


def public_to_x25519(public: bytes) -> bytes:
    """The 32-byte X25519 public key of a 32-byte Ed25519 public key; InvalidPublicKey when unusable."""
    if not isinstance(public, bytes | bytearray) or len(public) != 32:
        raise InvalidPublicKey("an Ed25519 public key is 32 bytes")
    number = int.from_bytes(public, "little")
    y, sign = number & ((1 << 255) - 1), number >> 255
    x = _recover_x(y, sign)
    if x is None:
        raise InvalidPublicKey("the public key is not a point of the Ed25519 curve")
    point = (x, y, 1, x * y % P)
    if _is_identity(_mul(8, point)):
        raise InvalidPublicKey("the public key is a point of small order")
    if not _is_identity(_mul(L, point)):
        raise InvalidPublicKey("the public key is outside the prime-order subgroup")
    u = (1 + y) * pow(1 - y, P - 2, P) % P
    return u.to_bytes(32, "little")


def public_b64_to_x25519(public_b64: str) -> X25519PublicKey:
    """The X25519 public key of a base64 Ed25519 public key (as in node.json, hub.json, the registry)."""
    try:
        raw = base64.b64decode(public_b64, validate=True)
    except (ValueError, TypeError) as exc:
        raise InvalidPublicKey("the public key is not base64") from exc
    return X25519PublicKey.from_public_bytes(public_to_x25519(raw))


def private_to_x25519(seed: bytes) -> bytes:
    """The 32-byte X25519 private key of a 32-byte Ed25519 seed: SHA-512(seed)[:32], clamped."""
    if len(seed) != 32:
        raise ValueError("an Ed25519 seed is 32 bytes")
    scalar = bytearray(hashlib.sha512(seed).digest()[:32])
    scalar[0] &= 248
    scalar[31] &= 127
    scalar[31] |= 64
    return bytes(scalar)


def private_key_to_x25519(private: Ed25519PrivateKey) -> X25519PrivateKey:
    """The X25519 private key of an Ed25519 private key."""
    seed = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                 serialization.NoEncryption())
    return X25519PrivateKey.from_private_bytes(private_to_x25519(seed))


def raw_public(public: X25519PublicKey) -> bytes:
    """The 32 raw bytes of an X25519 public key."""
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _aead(shared: bytes, ephemeral: bytes, recipient: bytes) -> ChaCha20Poly1305:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral + recipient, info=INFO).derive(shared)
    return ChaCha20Poly1305(key)


def seal_key(recipient_public_b64: str) -> tuple[ChaCha20Poly1305, bytes]:
    """A fresh ephemeral key agreement with a recipient's Ed25519 public key: (cipher, ephemeral public)."""
    recipient = public_b64_to_x25519(recipient_public_b64)
    ephemeral = X25519PrivateKey.generate()
    eph_raw = raw_public(ephemeral.public_key())
    return _aead(ephemeral.exchange(recipient), eph_raw, raw_public(recipient)), eph_raw


def open_key(private: Ed25519PrivateKey, ephemeral_public: bytes) -> ChaCha20Poly1305:
    """The cipher `seal_key` made, found again with the recipient's Ed25519 private key; ValueError if unusable."""
    mine = private_key_to_x25519(private)
    shared = mine.exchange(X25519PublicKey.from_public_bytes(ephemeral_public))
    return _aead(shared, ephemeral_public, raw_public(mine.public_key()))


__all__ = ["INFO", "InvalidPublicKey", "public_to_x25519", "public_b64_to_x25519", "private_to_x25519",
           "private_key_to_x25519", "raw_public", "seal_key", "open_key"]
