"""The credential vault: platform tokens sealed with AES-256-GCM, a key id on every row.

Several keys may be configured; the first seals, any of them opens, and ``rotate`` re-seals
rows still under an older key. The AEAD associated data binds each ciphertext to its row id
and organization, so a ciphertext copied onto another row does not open. Shredding a
credential deletes the row: history keeps only the (now useless) credential id.
"""

from __future__ import annotations

import base64
import json
import os
from datetime import datetime
from uuid import UUID, uuid4

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.postgres import PostgresDatastore

from application.platforms import TokenSet


class VaultKeyError(ValueError):
    pass


class CredentialNotFound(LookupError):
    pass


def parse_keyring(spec: str) -> list[tuple[str, bytes]]:
    """``"k2:<base64 32 bytes>,k1:<base64 32 bytes>"`` → [(key id, key)], newest first."""
    keys: list[tuple[str, bytes]] = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        key_id, _, encoded = item.partition(":")
        try:
            key = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        except ValueError as exc:
            raise VaultKeyError(f"vault key {key_id!r} is not base64") from exc
        if not key_id or len(key) != 32:
            raise VaultKeyError(f"vault key {key_id!r} must be 32 bytes of base64")
        keys.append((key_id, key))
    if not keys:
        raise VaultKeyError("at least one vault key is required")
    return keys


def new_vault_key(key_id: str) -> str:
    return f"{key_id}:{base64.urlsafe_b64encode(os.urandom(32)).decode()}"


class PostgresCredentialVault:
    def __init__(self, datastore: PostgresDatastore, keyring: list[tuple[str, bytes]]) -> None:
        self._datastore = datastore
        self._active_id, active = keyring[0]
        self._active = AESGCM(active)
        self._keys = {key_id: AESGCM(key) for key_id, key in keyring}

    def store(self, organization_id: UUID, tokens: TokenSet) -> UUID:
        credential_id = uuid4()
        nonce, ciphertext = self._seal(credential_id, organization_id, tokens)
        with self._datastore.transaction(commit=True) as curs:
            curs.execute(
                "INSERT INTO credentials (id, organization_id, key_id, nonce, ciphertext) "
                "VALUES (%s, %s, %s, %s, %s)",
                (credential_id, organization_id, self._active_id, nonce, ciphertext),
            )
        return credential_id

    def read(self, credential_id: UUID) -> TokenSet:
        with self._datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                "SELECT organization_id, key_id, nonce, ciphertext FROM credentials WHERE id = %s",
                (credential_id,),
            )
            row = curs.fetchone()
        if row is None:
            raise CredentialNotFound(f"credential {credential_id} does not exist")
        return self._open(
            credential_id, row["organization_id"], row["key_id"], row["nonce"], row["ciphertext"]
        )

    def replace(self, credential_id: UUID, tokens: TokenSet) -> None:
        with self._datastore.transaction(commit=True) as curs:
            curs.execute(
                "SELECT organization_id FROM credentials WHERE id = %s FOR UPDATE", (credential_id,)
            )
            row = curs.fetchone()
            if row is None:
                raise CredentialNotFound(f"credential {credential_id} does not exist")
            nonce, ciphertext = self._seal(credential_id, row["organization_id"], tokens)
            curs.execute(
                "UPDATE credentials SET key_id = %s, nonce = %s, ciphertext = %s, "
                "rotated_at = now() WHERE id = %s",
                (self._active_id, nonce, ciphertext, credential_id),
            )

    def shred(self, credential_id: UUID) -> None:
        with self._datastore.transaction(commit=True) as curs:
            curs.execute("DELETE FROM credentials WHERE id = %s", (credential_id,))

    def rotate(self) -> int:
        """Re-seal every row still under an older key with the active key."""
        with self._datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute("SELECT id FROM credentials WHERE key_id <> %s", (self._active_id,))
            stale = [row["id"] for row in curs.fetchall()]
        for credential_id in stale:
            self.replace(credential_id, self.read(credential_id))
        return len(stale)

    def _seal(
        self, credential_id: UUID, organization_id: UUID, tokens: TokenSet
    ) -> tuple[bytes, bytes]:
        nonce = os.urandom(12)
        payload = json.dumps(
            {
                "access_token": tokens.access_token,
                "refresh_token": tokens.refresh_token,
                "expires_at": tokens.expires_at.isoformat() if tokens.expires_at else None,
                "refresh_expires_at": tokens.refresh_expires_at.isoformat()
                if tokens.refresh_expires_at
                else None,
                "scopes": list(tokens.scopes),
            }
        ).encode()
        return nonce, self._active.encrypt(nonce, payload, _aad(credential_id, organization_id))

    def _open(
        self,
        credential_id: UUID,
        organization_id: UUID,
        key_id: str,
        nonce: bytes,
        ciphertext: bytes,
    ) -> TokenSet:
        try:
            key = self._keys[key_id]
        except KeyError:
            raise VaultKeyError(
                f"credential {credential_id} is sealed with unknown key {key_id!r}"
            ) from None
        data = json.loads(
            key.decrypt(bytes(nonce), bytes(ciphertext), _aad(credential_id, organization_id))
        )
        return TokenSet(
            access_token=data["access_token"],
            refresh_token=data["refresh_token"],
            expires_at=_parse(data["expires_at"]),
            refresh_expires_at=_parse(data["refresh_expires_at"]),
            scopes=tuple(data["scopes"]),
        )


def _aad(credential_id: UUID, organization_id: UUID) -> bytes:
    return f"kairos-credential/{credential_id}/{organization_id}".encode()


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
