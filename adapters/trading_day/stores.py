"""A store as the generator sees it: where it is, what it sells and how its customers pay,
and the chain of eight stores the benchmarks' days take place in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from adapters.trading_day import reader_ids

# A card's (brand, network, weight): how often it is presented, relative to the others.
Brand = tuple[str, str, int]
LIMIT_AMOUNT_MINOR = 10**12  # stored amount limits no day comes near
LIMIT_COUNT = 1_000_000  # the wire format's largest stored_count_max


@dataclass(frozen=True, kw_only=True)
class Store:
    """One Stripe Terminal Location: its place, its hours, its readers, its customers' cards
    and baskets, and the offline limits its location record sets."""

    location_id: str
    country: str
    currency: str
    utc_offset_hours: int
    sca_required: bool
    weight: float  # share of the day's sales, relative to the other stores
    opens: float  # local hours
    closes: float
    readers: int
    median_basket: float  # major units
    per_payment_max: int  # minor units
    brands: tuple[Brand, ...]
    contactless_share: float
    swipe_share: float
    stored_count_max: int = LIMIT_COUNT
    # Its first sales whose forwarding keeps failing, so they stay stored on their readers
    # (a reader left offline in a back room): they hold the location's stored count.
    stuck: int = 0

    @property
    def tz(self) -> timezone:
        return timezone(timedelta(hours=self.utc_offset_hours))

    def at(self, hours: float, day: date) -> datetime:
        """Local time `hours` after midnight of `day`, to the second."""
        midnight = datetime(day.year, day.month, day.day, tzinfo=self.tz)
        return midnight + timedelta(seconds=round(hours * 3600))

    def reader_ids(self) -> list[str]:
        return reader_ids(self.location_id, self.readers)


_US_BRANDS: tuple[Brand, ...] = (
    ("visa", "visa", 50),
    ("mastercard", "mastercard", 35),
    ("amex", "amex", 10),
    ("discover", "discover", 5),
)
_EUROPE_BRANDS: tuple[Brand, ...] = (
    ("visa", "visa", 50),
    ("mastercard", "mastercard", 40),
    ("amex", "amex", 10),
)


def _chain_store(
    location_id: str,
    currency: str,
    country: str,
    utc_offset_hours: int,
    sca_required: bool,
    weight: float,
    brands: tuple[Brand, ...] = _US_BRANDS,
) -> Store:
    """A store of the chain: open 8:00 to 22:00, four readers, baskets around 25."""
    return Store(
        location_id=location_id,
        country=country,
        currency=currency,
        utc_offset_hours=utc_offset_hours,
        sca_required=sca_required,
        weight=weight,
        opens=8.0,
        closes=22.0,
        readers=4,
        median_basket=25.0,
        per_payment_max=500_000,
        brands=brands,
        contactless_share=0.0 if sca_required else 0.6,
        swipe_share=0.0,
    )


# The chain of the benchmarks: US, Canadian and European stores (the European ones require
# strong customer authentication, so their readers take no contactless payment offline).
STORES: tuple[Store, ...] = (
    _chain_store("tml_nyc_5th_ave", "usd", "US", -5, False, 3.0),
    _chain_store("tml_chicago_loop", "usd", "US", -6, False, 2.0),
    _chain_store("tml_austin_south", "usd", "US", -6, False, 1.5),
    _chain_store("tml_sf_market_st", "usd", "US", -8, False, 2.5),
    _chain_store("tml_toronto_queen", "cad", "CA", -5, False, 1.5, _EUROPE_BRANDS),
    _chain_store("tml_london_soho", "gbp", "GB", 0, True, 2.0, _EUROPE_BRANDS),
    _chain_store("tml_berlin_mitte", "eur", "DE", 1, True, 1.5, _EUROPE_BRANDS),
    _chain_store(
        "tml_paris_marais",
        "eur",
        "FR",
        1,
        True,
        1.0,
        (("visa", "cartes_bancaires", 25), ("visa", "visa", 25), *_EUROPE_BRANDS[1:]),
    ),
)
