"""The bodies the HTTP API takes and gives, beyond the wire records and the library's views
(`ledger.wire`, `ledger.views`), which it uses as they are. The requests are built from the
wire format's own field types, so a field means and accepts the same in a file, a library call
and a request."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from ledger.application import BATCH_SIZE_MAX, HOLD_DEFAULT, HOLD_MAX
from ledger.errors import Breach
from ledger.status_views import LocationStatus
from ledger.views import DeviceState, PaymentState
from ledger.wire import AmountMinor, Currency, Identifier, Record, Timestamp

Behavior = Literal["prefer_online", "require_online", "force_offline"]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RecordBatch(_Request):
    """Records applied in order, as `Ledger.record_many` does: each gets its own result."""

    records: Annotated[list[Record], Field(min_length=1, max_length=BATCH_SIZE_MAX)]


class DecideRequest(_Request):
    amount: AmountMinor
    currency: Currency
    device_id: Identifier
    location_id: Identifier
    offline_behavior: Behavior = "prefer_online"
    at: Timestamp | None = Field(default=None, description="Default: now.")


class ReserveRequest(_Request):
    offline_id: UUID
    amount: AmountMinor
    currency: Currency
    device_id: Identifier
    location_id: Identifier
    at: Timestamp | None = Field(default=None, description="Default: now.")
    hold_seconds: Annotated[StrictInt, Field(gt=0, le=int(HOLD_MAX.total_seconds()))] = int(
        HOLD_DEFAULT.total_seconds()
    )


class ReleaseRequest(_Request):
    at: Timestamp | None = Field(default=None, description="Default: now.")


class AllowRequest(_Request):
    device_id: Identifier
    location_id: Identifier
    amounts: dict[Currency, Annotated[StrictInt, Field(ge=0, le=10**15)]]
    count: Annotated[StrictInt, Field(ge=0, le=1_000_000)]
    valid_until: Timestamp
    at: Timestamp | None = Field(default=None, description="Default: now.")


class RecordAnswer(BaseModel):
    """One applied record: `recorded` false for a repeat (nothing new stored), the rules the
    fact broke (recorded with it), and the state of what it is about."""

    recorded: bool
    record_type: str
    key: str
    breaches: list[Breach]
    state: PaymentState | LocationStatus | DeviceState | None


class ItemError(BaseModel):
    code: str
    message: str
    field: str | None = None
    details: dict[str, Any] | None = None


class BatchItem(BaseModel):
    """One record of a batch: its result, or its refusal (nothing stored for it)."""

    index: int
    recorded: bool | None = None
    record_type: str | None = None
    key: str | None = None
    breaches: list[Breach] = []
    error: ItemError | None = None


class BatchAnswer(BaseModel):
    recorded: int
    repeats: int
    refused: int
    results: list[BatchItem]


class DecisionAnswer(BaseModel):
    offline_allowed: bool
    offline_behavior: str
    code: str | None
    reasons: list[dict[str, Any]]
    headroom: list[dict[str, Any]]


class StoredPayment(BaseModel):
    """A payment stored on a reader, not yet forwarded: how long it has been waiting."""

    offline_id: str
    location_id: str
    device_id: str
    amount: int
    currency: str
    stored_at: datetime
    age_seconds: int


class Health(BaseModel):
    status: str
