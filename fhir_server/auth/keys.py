"""Token signing keys: generated on first start, kept encrypted in the store, rotated by CLI.

The private JWK is sealed with AES-GCM under a key derived (HKDF-SHA256) from
`FHIR_SECRET_KEY`, so a copy of the database alone cannot sign tokens. The
newest key signs; retired keys stay in the JWKS until every token they signed
has expired, then rotation drops them. RS256 for everything we sign: it is what
OIDC clients and SMART test kits expect for id_tokens.
"""

from __future__ import annotations

import base64
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from joserfc import jwk

from fhir_server.settings import Settings
from fhir_server.store.auth_store import AuthStore

ALGORITHM = "RS256"


def _sealing_key(secret: str) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"fhir-server signing keys")
    return hkdf.derive(secret.encode("utf-8"))


def seal(secret: str, data: dict[str, Any]) -> str:
    nonce = os.urandom(12)
    sealed = AESGCM(_sealing_key(secret)).encrypt(nonce, orjson.dumps(data), None)
    return base64.b64encode(nonce + sealed).decode("ascii")


def unseal(secret: str, blob: str) -> dict[str, Any]:
    raw = base64.b64decode(blob)
    opened: dict[str, Any] = orjson.loads(
        AESGCM(_sealing_key(secret)).decrypt(raw[:12], raw[12:], None)
    )
    return opened


@dataclass
class KeyRing:
    """The signing key and the public keys tokens may still be checked against."""

    signing: jwk.RSAKey
    public: dict[str, jwk.RSAKey]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.as_dict(private=False) for key in self.public.values()]}

    def key_set(self) -> jwk.KeySet:
        return jwk.KeySet(list(self.public.values()))


def _generate() -> jwk.RSAKey:
    kid = uuid.uuid4().hex
    return jwk.RSAKey.generate_key(2048, parameters={"kid": kid, "alg": ALGORITHM, "use": "sig"})


async def _store_new(store: AuthStore, secret: str) -> jwk.RSAKey:
    key = _generate()
    await store.add_key(
        {
            "_id": key.kid,
            "public": key.as_dict(private=False),
            "sealed": seal(secret, key.as_dict(private=True)),
            "created": time.time(),
            "retired_at": None,
        }
    )
    return key


async def load_keyring(store: AuthStore, secret: str) -> KeyRing:
    """The key ring from the store, creating the first key when there is none."""
    docs = await store.signing_keys()
    if not docs:
        await _store_new(store, secret)
        docs = await store.signing_keys()
    active = next((d for d in docs if d.get("retired_at") is None), docs[0])
    signing = jwk.RSAKey.import_key(unseal(secret, active["sealed"]))
    public = {d["_id"]: jwk.RSAKey.import_key(d["public"]) for d in docs}
    return KeyRing(signing=signing, public=public)


async def rotate(store: AuthStore, settings: Settings) -> str:
    """Make a new signing key; drop keys retired longer ago than the longest token life
    (an hour at least), so every token still alive can be checked."""
    now = int(time.time())
    key = await _store_new(store, settings.secret_key)
    await store.retire_keys(key.kid or "", now)
    await store.drop_keys_retired_before(now - max(settings.access_token_lifetime, 3600))
    return key.kid or ""


async def key_list(store: AuthStore) -> list[dict[str, Any]]:
    """The keys in the JWKS, newest first: which signs, when each was made and retired."""
    return [
        {
            "kid": d["_id"],
            "created": int(d["created"]),
            "retired_at": d.get("retired_at"),
            "signing": d.get("retired_at") is None,
        }
        for d in await store.signing_keys()
    ]
