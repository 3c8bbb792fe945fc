"""API keys: who may call the HTTP API, for what, and for which locations.

A key is a random token shown once when it is created (`olk_<id>_<secret>`, 256 bits of
secret); only its SHA-256 is stored, beside its id, role, optional locations, and when it was
created and revoked. Every request looks its key up (one indexed read), so a revocation takes
effect at the next request, in every server process. A plain hash is enough for a token of
this entropy (no guessing can reach it, unlike a password), and it keeps the check cheap.

Roles:
- `pos`: record facts (not a location's configuration), decide, reserve and release, grant
  allowances, read payments and status, for its locations;
- `finance`: read everything in its locations, and the report;
- `admin`: everything, the locations' configuration included.

A key with locations sees only those: any other location's, device's or payment's id is
answered 404, as if it did not exist.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, DateTime, Engine, MetaData, String, Table, insert, select, update

from adapters.http.problems import UNAUTHENTICATED, ApiError
from ledger.errors import Code, InvalidRecord, NotFound
from ledger.pan import holds_pan
from ledger.storage import StoreConfig, engine_for

PREFIX = "olk"
_ID_BYTES = 8
_SECRET_BYTES = 32

metadata = MetaData()
api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("secret_sha256", String(64), nullable=False),
    Column("name", String(255), nullable=False),
    Column("role", String(16), nullable=False),
    Column("locations", String(8192), nullable=False),  # ";"-joined; "" for every location
    Column("created_at", DateTime, nullable=False),  # naive UTC
    Column("revoked_at", DateTime),
)


class Role(StrEnum):
    POS = "pos"
    FINANCE = "finance"
    ADMIN = "admin"


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    name: str
    role: Role
    locations: tuple[str, ...]  # empty: every location
    created_at: datetime
    revoked_at: datetime | None

    def sees(self, location_id: str) -> bool:
        return not self.locations or location_id in self.locations

    def to_dict(self) -> dict[str, object]:
        return {
            "key_id": self.key_id,
            "name": self.name,
            "role": str(self.role),
            "locations": list(self.locations),
            "created_at": self.created_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


class KeyStore:
    """The keys of one ledger database."""

    def __init__(self, config: StoreConfig) -> None:
        if config.kind == "memory":
            raise InvalidRecord(
                Code.INVALID_DATABASE_URL,
                "API keys need a database: use sqlite:///file.db or postgresql://...",
            )
        self.config = config
        self.engine: Engine = engine_for(config)

    def close(self) -> None:
        self.engine.dispose()

    def create(self, name: str, role: Role, locations: tuple[str, ...]) -> tuple[ApiKey, str]:
        """A new key and its token (shown once: only its hash is kept)."""
        key_id = _new_key_id()
        token = f"{PREFIX}_{key_id}_{secrets.token_urlsafe(_SECRET_BYTES)}"
        now = datetime.now(UTC)
        key = ApiKey(key_id, name, role, tuple(sorted(set(locations))), now, None)
        with self.engine.begin() as conn:
            conn.execute(
                insert(api_keys).values(
                    key_id=key_id,
                    secret_sha256=_digest(token),
                    name=name,
                    role=str(role),
                    locations=";".join(key.locations),
                    created_at=now.replace(tzinfo=None),
                )
            )
        return key, token

    def list(self) -> list[ApiKey]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(api_keys).order_by(api_keys.c.created_at)).mappings()
            return [_key(row) for row in rows]

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke the key (again: a no-op); NotFound for an unknown id."""
        with self.engine.begin() as conn:
            conn.execute(
                update(api_keys)
                .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC).replace(tzinfo=None))
            )
            row = conn.execute(select(api_keys).where(api_keys.c.key_id == key_id)).mappings()
            found = row.first()
        if found is None:
            raise NotFound(Code.INVALID_VALUE, f"no API key {key_id!r}", field="key_id")
        return _key(found)

    def authenticate(self, token: str | None) -> ApiKey:
        """The live key the token is, else ApiError UNAUTHENTICATED (never saying why)."""
        key_id = key_id_of(token)
        row = None
        if key_id is not None:
            with self.engine.connect() as conn:
                found = conn.execute(select(api_keys).where(api_keys.c.key_id == key_id))
                row = found.mappings().first()
        return live_key(token, row)


def live_key(token: str | None, row: Mapping[Any, Any] | None) -> ApiKey:
    """The key of `row` (the one `key_id_of(token)` names) when it is live and the token's
    secret is its own; else ApiError UNAUTHENTICATED, the same for every reason."""
    if (
        token is not None
        and row is not None
        and row["revoked_at"] is None
        and hmac.compare_digest(row["secret_sha256"], _digest(token))
    ):
        return _key(row)
    raise ApiError(
        UNAUTHENTICATED, "authentication required", headers={"www-authenticate": "Bearer"}
    )


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_key_id() -> str:
    """A random key id that no card-number scan reads as one: 16 hex digits are all digits
    and pass the Luhn check about once in 2,000 draws, and the id is stored and logged."""
    while holds_pan(key_id := secrets.token_hex(_ID_BYTES)):
        pass
    return key_id


def key_id_of(token: str | None) -> str | None:
    """The id a token names (its row's key), None for what is no token of ours."""
    parts = (token or "").split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX or len(parts[1]) != 2 * _ID_BYTES:
        return None
    return parts[1]


def _key(values: Mapping[Any, Any]) -> ApiKey:
    return ApiKey(
        key_id=values["key_id"],
        name=values["name"],
        role=Role(values["role"]),
        locations=tuple(filter(None, values["locations"].split(";"))),
        created_at=values["created_at"].replace(tzinfo=UTC),
        revoked_at=values["revoked_at"].replace(tzinfo=UTC) if values["revoked_at"] else None,
    )


def bearer(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header."""
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None
