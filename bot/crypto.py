"""Field encryption for health data: Fernet (AES-128-CBC + HMAC-SHA256) with key rotation.

`ENCRYPTION_KEYS` holds one or more Fernet keys separated by commas. The first key encrypts;
every key decrypts (MultiFernet), so rotation is: put a new key first, re-encrypt the stored rows
(`run_bot.py rotate-keys`), then remove the old key. Each ciphertext is bound to a context string
(such as ``intake:17``) inside the authenticated payload, so a ciphertext copied onto another
patient's row fails to decrypt instead of showing one patient's answers to another.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class CryptoError(Exception):
    """A ciphertext cannot be decrypted with the configured keys, or belongs elsewhere."""


def parse_keys(raw: str) -> list[str]:
    """Split and check ENCRYPTION_KEYS. ValueError names the key's position, never its value."""
    keys = [k.strip() for k in raw.split(",") if k.strip()]
    if not keys:
        raise ValueError("must hold at least one key")
    for position, key in enumerate(keys, 1):
        try:
            Fernet(key.encode())
        except (ValueError, TypeError):
            raise ValueError(
                f"key {position} is not a Fernet key (32 url-safe base64-encoded bytes; "
                "generate one with `python run_bot.py new-key`)"
            ) from None
    if len(set(keys)) != len(keys):
        raise ValueError("lists the same key twice")
    return keys


def new_key() -> str:
    return Fernet.generate_key().decode()


class CryptoBox:
    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("at least one key is required")
        self._fernets = [Fernet(k.encode()) for k in keys]
        self._multi = MultiFernet(self._fernets)

    def encrypt_json(self, value: Any, *, context: str) -> bytes:
        payload = json.dumps({"ctx": context, "v": value}, ensure_ascii=False, separators=(",", ":"))
        return self._multi.encrypt(payload.encode("utf-8"))

    def decrypt_json(self, token: bytes, *, context: str) -> Any:
        try:
            payload = json.loads(self._multi.decrypt(bytes(token)).decode("utf-8"))
        except InvalidToken:
            raise CryptoError("ciphertext does not decrypt with any configured key") from None
        if not isinstance(payload, dict) or payload.get("ctx") != context:
            raise CryptoError("ciphertext belongs to another record")
        return payload["v"]

    def readable(self, token: bytes) -> bool:
        """Whether a configured key decrypts it (not: encrypted under a key since removed)."""
        try:
            self._multi.decrypt(bytes(token))
        except InvalidToken:
            return False
        return True

    def left_behind(self, tokens: Iterable[bytes | None]) -> tuple[int, int]:
        """After a rotation: (readable but under an old key, readable with no configured key)."""
        old = [t for t in tokens if t and self.needs_rotation(t)]
        unreadable = sum(1 for t in old if not self.readable(t))
        return len(old) - unreadable, unreadable

    def needs_rotation(self, token: bytes) -> bool:
        """True if the primary (first) key cannot decrypt it: an older key encrypted it."""
        try:
            self._fernets[0].decrypt(bytes(token))
        except InvalidToken:
            return True
        return False

    def rotate(self, token: bytes) -> bytes:
        """Re-encrypt under the primary key (the payload, and so its context, is unchanged)."""
        try:
            return self._multi.rotate(bytes(token))
        except InvalidToken:
            raise CryptoError("ciphertext does not decrypt with any configured key") from None
