"""The simulated merchant: its four locations, the day and the sales (shared by the scenario,
Stripe's side and the summary)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from adapters.trading_day import stores
from ledger.money import exponent

Record = dict[str, Any]


DAY = date(2026, 11, 20)
AS_OF = datetime(2026, 11, 21, 18, 0, tzinfo=UTC)


@dataclass(frozen=True, kw_only=True)
class Store(stores.Store):
    """One Stripe Terminal Location of the simulated merchant: a store of the day generator,
    with its city, its outage and Stripe's fee there."""

    city: str
    outage: tuple[float, float]  # local hours without internet
    manual_share: float  # sales authorized now and captured later (tabs, orders, deposits)
    fee_basis_points: int  # Stripe's card-present fee: a share ...
    fee_fixed: int  # ... plus a fixed amount, minor units

    def at(self, hours: float, day: date = DAY) -> datetime:
        """Local time `hours` after midnight of `day` (the demo's day unless given)."""
        return super().at(hours, day)

    @property
    def spare_reader_id(self) -> str:
        return f"tmr_{self.location_id.removeprefix('tml_')}_spare"

    @property
    def outage_text(self) -> str:
        start, end = self.outage
        return f"{_clock(start)}-{_clock(end)} local"


NEW_YORK = Store(
    location_id="tml_nyc_broadway",
    city="New York",
    country="US",
    currency="usd",
    utc_offset_hours=-5,
    sca_required=False,
    weight=4.0,
    opens=8.0,
    closes=21.0,
    outage=(11.0, 15.0),
    readers=4,
    manual_share=0.2,
    median_basket=28.0,
    per_payment_max=40_000,
    brands=(
        ("visa", "visa", 50),
        ("mastercard", "mastercard", 30),
        ("amex", "amex", 12),
        ("discover", "discover", 8),
    ),
    contactless_share=0.62,
    swipe_share=0.04,
    fee_basis_points=270,
    fee_fixed=5,
)
TORONTO = Store(
    location_id="tml_toronto_queen_st",
    city="Toronto",
    country="CA",
    currency="cad",
    utc_offset_hours=-5,
    sca_required=False,
    weight=2.0,
    opens=9.0,
    closes=21.0,
    outage=(12.5, 15.5),
    readers=3,
    manual_share=0.0,
    median_basket=32.0,
    per_payment_max=50_000,
    brands=(
        ("visa", "visa", 42),
        ("mastercard", "mastercard", 36),
        ("amex", "amex", 8),
        ("interac", "interac", 14),
    ),
    contactless_share=0.6,
    swipe_share=0.01,
    fee_basis_points=260,
    fee_fixed=10,
)
BERLIN = Store(
    location_id="tml_berlin_mitte",
    city="Berlin",
    country="DE",
    currency="eur",
    utc_offset_hours=1,
    sca_required=True,
    weight=2.5,
    opens=9.0,
    closes=20.0,
    outage=(10.0, 13.5),
    readers=3,
    manual_share=0.15,
    median_basket=24.0,
    per_payment_max=30_000,
    brands=(
        ("visa", "visa", 35),
        ("mastercard", "mastercard", 42),
        ("maestro", "girocard", 15),
        ("amex", "amex", 8),
    ),
    contactless_share=0.12,
    swipe_share=0.005,
    fee_basis_points=140,
    fee_fixed=10,
)
TOKYO = Store(
    location_id="tml_tokyo_shibuya",
    city="Tokyo",
    country="JP",
    currency="jpy",
    utc_offset_hours=9,
    sca_required=False,
    weight=2.0,
    opens=10.0,
    closes=21.0,
    outage=(10.0, 13.0),
    readers=2,
    manual_share=0.3,
    median_basket=3_200.0,
    per_payment_max=30_000,
    brands=(
        ("jcb", "jcb", 40),
        ("visa", "visa", 33),
        ("mastercard", "mastercard", 20),
        ("amex", "amex", 7),
    ),
    contactless_share=0.5,
    swipe_share=0.005,
    fee_basis_points=360,
    fee_fixed=0,
)
STORES: tuple[Store, ...] = (NEW_YORK, TORONTO, BERLIN, TOKYO)
# The parts of the day's script, each given to chosen offline sales:
ROLES = {
    "tab_voided": "a New York tab authorized during the outage, then voided",
    "tab_open": "a New York tab authorized during the outage, still open (awaiting capture)",
    "jcb_uncaptured": "a Tokyo reader 2 JCB authorization its end-of-day capture missed",
    "over_limit": "a basket over the location's per-payment limit (refused, paid otherwise)",
    "spare_reader": "a sale on New York's spare reader, not online for 42 days (refused)",
    "next_day": "a sale stored during New York's short outage the next day (pending)",
    "lost": "a stored payment its reader never forwards (stale)",
    "missing": "a forwarded payment missing from Stripe's report",
    "duplicate": "a payment forwarded twice: two PaymentIntents, both charged",
    "refund": "a payment refunded the next morning",
    "partial_refund": "a payment refunded in part (one item returned)",
    "dispute_open": "a payment the cardholder disputes (open: the money is withdrawn)",
    "dispute_lost": "a payment disputed, and the dispute lost",
    "dispute_won": "a payment disputed, and the dispute won (the money reinstated)",
    "converted": "a Toronto payment settled in USD (currency conversion)",
    "mismatch": "a payment Stripe charged 1.00 more than the sale",
    "partial": "a Berlin order captured partially (an item was out of stock)",
    "declined": "a payment the issuer declines when forwarded",
}
# New York's second, short outage the next day: its sales are still stored at AS_OF.
NEXT_DAY_OUTAGE = (12 + 20 / 60, 12 + 50 / 60)


@dataclass
class Sale:
    number: int
    store: Store
    device_id: str
    created_at: datetime  # local time of the store
    amount: int  # minor units
    offline: bool
    offline_id: str = ""
    manual: bool = False
    cards: list[dict[str, Any]] = field(default_factory=list)  # presented, in order
    pays_cash: bool = False  # the first card is refused and the customer pays cash instead
    walks_away: bool = False  # the customer cancels before the payment is confirmed
    role: str = ""  # its part in the day's script (see ROLES), if any
    # What happened in the ledger and at Stripe, filled in as the day goes.
    confirmed_at: datetime | None = None
    stored: bool = False
    payment_intent_id: str | None = None
    charge_id: str | None = None
    forwarded_at: datetime | None = None
    decline_code: str | None = None
    duplicate_payment_intent_id: str | None = None
    duplicate_at: datetime | None = None
    captured_at: datetime | None = None
    amount_captured: int | None = None
    voided_at: datetime | None = None
    refunded_at: datetime | None = None
    refund_amount: int | None = None
    disputed_at: datetime | None = None

    @property
    def card(self) -> dict[str, Any]:
        return self.cards[-1]

    @property
    def forwarded(self) -> bool:
        """Sent to Stripe when the network came back (the lost one and the next day's
        outage's are still on their readers)."""
        return self.role not in ("lost", "next_day")

    @property
    def stripe_amount(self) -> int:
        """What Stripe charged: the sale's amount, except for the one charge that differs."""
        return self.amount + (10 ** exponent(self.store.currency) if self.role == "mismatch" else 0)


def _clock(hours: float) -> str:
    minutes = round(hours * 60)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"
