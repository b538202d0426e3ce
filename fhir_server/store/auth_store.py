"""Persistence for the authorization server: users, clients, codes, tokens, keys.

Plain documents in `auth_*` collections (not FHIR resources). Secrets are
never stored in the clear: codes, refresh tokens and reset tokens are kept as
their SHA-256 (`_id`), passwords and client secrets as argon2 hashes made by
the caller. Expiry times are integer epoch seconds (scalars compare the same
on MongoDB and the embedded server). Single-use items are claimed with a
conditional update, so two replicas cannot both use one.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from fhir_server.store.database import Database

Doc = dict[str, Any]


def digest(secret: str) -> str:
    """The stored form of a high-entropy secret (code, refresh token, reset token)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class AuthStore:
    def __init__(self, database: Database) -> None:
        self.database = database
        db = database.db
        self.users = db["auth_users"]
        self.clients = db["auth_clients"]
        self.codes = db["auth_codes"]
        self.tokens = db["auth_tokens"]
        self.refresh = db["auth_refresh"]
        self.assertions = db["auth_assertions"]
        self.keys = db["auth_keys"]
        self.launches = db["auth_launches"]
        self.resets = db["auth_resets"]
        self.throttle = db["auth_throttle"]

    async def ensure_indexes(self) -> None:
        await self.users.create_index([("email", 1)])
        await self.users.create_index([("fhir_user", 1)])
        await self.refresh.create_index([("family", 1)])
        await self.tokens.create_index([("family", 1)])

    # -- users ---------------------------------------------------------------

    async def user(self, username: str) -> Doc | None:
        found: Doc | None = await self.users.find_one({"_id": username.lower()})
        return found

    async def email_for_fhir_user(self, fhir_user: str) -> str | None:
        """The e-mail of an active account linked to a FHIR resource (`Practitioner/1`)."""
        doc = await self.users.find_one(
            {"fhir_user": {"$eq": fhir_user}, "disabled": {"$ne": True}}, {"email": 1}
        )
        email = doc.get("email") if doc else None
        return str(email) if email else None

    async def only_disabled_accounts(self, fhir_user: str) -> bool:
        """Whether accounts are linked to a FHIR resource and every one of them is disabled
        (False for a resource no account is linked to); one look-up on the `fhir_user` index."""
        cursor = self.users.find({"fhir_user": {"$eq": fhir_user}}, {"disabled": 1})
        flags = [bool(doc.get("disabled")) async for doc in cursor]
        return bool(flags) and all(flags)

    async def user_by_email(self, email: str) -> Doc | None:
        found: Doc | None = await self.users.find_one({"email": {"$eq": email.lower()}})
        return found

    async def add_user(self, doc: Doc) -> bool:
        try:
            await self.users.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    async def update_user(self, username: str, changes: Doc) -> bool:
        result = await self.users.update_one({"_id": username.lower()}, {"$set": changes})
        return bool(result.matched_count)

    async def count_failure(self, username: str, limit: int, locked_until: int) -> None:
        """Count one failed login with an atomic increment (concurrent failures all count);
        the failure that reaches `limit` locks the account until `locked_until`."""
        doc = await self.users.find_one_and_update(
            {"_id": username.lower()},
            {"$inc": {"failures": 1}},
            return_document=ReturnDocument.AFTER,
        )
        if doc is not None and int(doc.get("failures", 0)) >= limit:
            await self.users.update_one(
                {"_id": username.lower()},
                {"$set": {"failures": 0, "locked_until": locked_until}},
            )

    async def list_users(self) -> list[Doc]:
        return [doc async for doc in self.users.find({}).sort("_id", 1)]

    # -- clients -------------------------------------------------------------

    async def client(self, client_id: str) -> Doc | None:
        found: Doc | None = await self.clients.find_one({"_id": client_id})
        return found

    async def add_client(self, doc: Doc) -> bool:
        try:
            await self.clients.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    async def update_client(self, client_id: str, changes: Doc) -> bool:
        result = await self.clients.update_one({"_id": client_id}, {"$set": changes})
        return bool(result.matched_count)

    async def remove_client(self, client_id: str) -> bool:
        result = await self.clients.delete_one({"_id": client_id})
        return bool(result.deleted_count)

    async def list_clients(self) -> list[Doc]:
        return [doc async for doc in self.clients.find({}).sort("_id", 1)]

    # -- authorization codes and launches -------------------------------------

    async def save_code(self, code: str, doc: Doc) -> None:
        await self.codes.insert_one({**doc, "_id": digest(code), "used": False})

    async def code(self, code: str) -> Doc | None:
        found: Doc | None = await self.codes.find_one({"_id": digest(code)})
        return found

    async def claim_code(self, code: str) -> bool:
        """Mark a code used; False when it already was (a replay)."""
        result = await self.codes.update_one(
            {"_id": digest(code), "used": False}, {"$set": {"used": True}}
        )
        return bool(result.modified_count)

    async def save_launch(self, launch: str, doc: Doc) -> None:
        await self.launches.insert_one({**doc, "_id": digest(launch)})

    async def launch(self, launch: str) -> Doc | None:
        found: Doc | None = await self.launches.find_one({"_id": digest(launch)})
        return found

    # -- tokens --------------------------------------------------------------

    async def save_access(self, doc: Doc) -> None:
        await self.tokens.insert_one({**doc, "revoked": False})

    async def access(self, jti: str) -> Doc | None:
        found: Doc | None = await self.tokens.find_one({"_id": jti})
        return found

    async def revoke_access(self, jti: str) -> Doc | None:
        found: Doc | None = await self.tokens.find_one_and_update(
            {"_id": jti}, {"$set": {"revoked": True}}, return_document=ReturnDocument.AFTER
        )
        return found

    async def save_refresh(self, token: str, doc: Doc) -> None:
        await self.refresh.insert_one(
            {**doc, "_id": digest(token), "used": False, "revoked": False}
        )

    async def refresh_token(self, token: str) -> Doc | None:
        found: Doc | None = await self.refresh.find_one({"_id": digest(token)})
        return found

    async def claim_refresh(self, token: str) -> bool:
        """Mark a refresh token used (rotation); False when it already was."""
        result = await self.refresh.update_one(
            {"_id": digest(token), "used": False, "revoked": False}, {"$set": {"used": True}}
        )
        return bool(result.modified_count)

    async def revoke_family(self, family: str) -> None:
        """Kill every refresh and access token descended from one authorization."""
        await self.refresh.update_many({"family": {"$eq": family}}, {"$set": {"revoked": True}})
        await self.tokens.update_many({"family": {"$eq": family}}, {"$set": {"revoked": True}})

    async def revoke_user_tokens(self, username: str) -> None:
        """End every session of an account: its refresh tokens and its unexpired access tokens
        (access tokens are checked against their record on every request, so this is immediate)."""
        await self.refresh.update_many({"sub": {"$eq": username}}, {"$set": {"revoked": True}})
        await self.tokens.update_many({"sub": {"$eq": username}}, {"$set": {"revoked": True}})

    async def revoke_client_tokens(self, client_id: str) -> None:
        """End every session held by one client (its credentials were replaced)."""
        match = {"client_id": {"$eq": client_id}}
        await self.refresh.update_many(match, {"$set": {"revoked": True}})
        await self.tokens.update_many(match, {"$set": {"revoked": True}})

    async def remember_assertion(self, client_id: str, jti: str, expires_at: int) -> bool:
        """Record a client assertion's jti; False when it was seen before (a replay)."""
        return await self.use_once(client_id, jti, expires_at)

    async def use_once(self, kind: str, key: str, expires_at: int) -> bool:
        """Claim a single-use value (an assertion jti, a consent form's nonce) until it
        expires; False when it was claimed before."""
        try:
            await self.assertions.insert_one({"_id": f"{kind}|{key}", "expires_at": expires_at})
        except DuplicateKeyError:
            return False
        return True

    # -- signing keys ----------------------------------------------------------

    async def signing_keys(self) -> list[Doc]:
        return [doc async for doc in self.keys.find({}).sort("created", -1)]

    async def add_key(self, doc: Doc) -> None:
        await self.keys.insert_one(doc)

    async def retire_keys(self, except_kid: str, retired_at: int) -> None:
        await self.keys.update_many(
            {"_id": {"$ne": except_kid}, "retired_at": None}, {"$set": {"retired_at": retired_at}}
        )

    async def drop_keys_retired_before(self, moment: int) -> None:
        await self.keys.delete_many({"retired_at": {"$lt": moment}})

    # -- password resets and throttling ------------------------------------------

    async def save_reset(self, token: str, doc: Doc) -> None:
        await self.resets.insert_one({**doc, "_id": digest(token), "used": False})

    async def claim_reset(self, token: str) -> Doc | None:
        found: Doc | None = await self.resets.find_one_and_update(
            {"_id": digest(token), "used": False}, {"$set": {"used": True}}
        )
        return found

    async def hit(self, key: str, window: int) -> int:
        """Count one request for `key` in the time window `window`; the count so far."""
        doc = await self.throttle.find_one_and_update(
            {"_id": f"{key}|{window}"},
            {"$inc": {"count": 1}, "$set": {"window": window}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        return int(doc["count"]) if doc else 1

    async def client_with_origin(self, origin: str) -> bool:
        """Is `origin` the origin of some registered client's redirect URI (CORS)?"""
        return await self.clients.find_one({"origins": origin}, {"_id": 1}) is not None

    async def live_refresh_tokens(self, username: str, now: int) -> list[Doc]:
        """The user's refresh tokens that can still be used: one per live app authorization."""
        query = {
            "sub": {"$eq": username},
            "revoked": {"$eq": False},
            "used": {"$eq": False},
            "expires_at": {"$gt": now},
        }
        return [doc async for doc in self.refresh.find(query, {"_id": 0})]

    async def purge_expired(self, now: int) -> None:
        """Drop records nobody can use any more (expired codes, tokens, jtis, windows)."""
        expired = {"expires_at": {"$lt": now}}
        for collection in (
            self.codes,
            self.tokens,
            self.refresh,
            self.assertions,
            self.launches,
            self.resets,
        ):
            await collection.delete_many(expired)
        await self.throttle.delete_many({"window": {"$lt": now // 60 - 1}})
