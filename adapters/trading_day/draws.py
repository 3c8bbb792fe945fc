"""The random draws a trading day is made of, all from one seeded generator: when a sale
happens (the rush hours of a shop), how big its basket is, which card the customer presents and
how the reader reads it, and how a day's sales are shared among the stores."""

from __future__ import annotations

import math
import random
from datetime import date, datetime
from typing import Any

from adapters.trading_day.stores import Store
from ledger.money import exponent

# Brands the offline rules never accept (Interac, and girocard debit cards read as Maestro).
_NEVER_OFFLINE = ("interac", "maestro")


def rush(hour: float) -> float:
    """How busy the shops are at a local hour (relative): lunch and evening rushes."""
    return (
        1.0
        + 2.2 * math.exp(-((hour - 12.75) ** 2) / 1.1)
        + 1.6 * math.exp(-((hour - 18.0) ** 2) / 2.0)
    )


_RUSH_MAX = 4.8  # above `rush` everywhere


def rush_area(start: float, end: float) -> float:
    """How many sales fall between two local hours, relative to other spans (the area under
    `rush`, by the midpoint rule on minutes)."""
    steps = max(1, round((end - start) * 60))
    width = (end - start) / steps
    return sum(rush(start + (i + 0.5) * width) for i in range(steps)) * width


def sale_moment(rng: random.Random, store: Store, start: float, end: float, day: date) -> datetime:
    """A sale's local time between hours `start` and `end` of `day`, following the rush hours
    (drawn by rejection: sorted, many draws are the arrivals of a Poisson process whose rate
    follows `rush`)."""
    while True:
        hour = rng.uniform(start, end)
        if rng.uniform(0, _RUSH_MAX) <= rush(hour):
            return store.at(hour, day)


def apportion(total: int, weights: list[float]) -> list[int]:
    """`total` split in proportion to `weights` (largest remainders), summing to `total`."""
    shares = [total * w / sum(weights) for w in weights]
    counts = [math.floor(s) for s in shares]
    for i in sorted(range(len(weights)), key=lambda i: counts[i] - shares[i])[
        : total - sum(counts)
    ]:
        counts[i] += 1
    return counts


def basket_amount(rng: random.Random, store: Store) -> int:
    """A basket in minor units, around the store's median with a long tail of larger ones,
    rounded as prices are (to 5 minor units; to 10 yen)."""
    places = exponent(store.currency)
    value = rng.lognormvariate(math.log(store.median_basket), 0.85)
    if places == 0:
        return max(100, round(value / 10) * 10)
    scale: int = 10**places
    minor = round(value * scale)
    return max(100, minor - minor % 5)


def card(rng: random.Random, store: Store, day: date, valid: bool = False) -> dict[str, Any]:
    """A card as the reader reads it on `day`; with `valid`, one the offline rules accept here.

    Otherwise some are refused offline as in real life: swiped, tapped where strong customer
    authentication applies, an online PIN, expired, or a brand no reader stores offline."""
    choices = [(b, n, w) for b, n, w in store.brands if not valid or b not in _NEVER_OFFLINE]
    brand, network, _ = rng.choices(choices, [w for _, _, w in choices])[0]
    draw = rng.random()
    if draw < store.contactless_share and not (valid and store.sca_required):
        read_method, verification = "contactless_emv", "none"
    elif draw < store.contactless_share + store.swipe_share and not valid:
        read_method = (
            "magnetic_stripe_track2" if store.country == "US" else "magnetic_stripe_fallback"
        )
        verification = "signature"
    else:
        read_method = "contact_emv"
        verification = (
            "signature" if store.country == "US" and rng.random() < 0.4 else "offline_pin"
        )
    funding = "debit" if brand in _NEVER_OFFLINE or rng.random() < 0.3 else "credit"
    if (
        not valid
        and store.country == "US"
        and funding == "debit"
        and read_method == "contact_emv"
        and rng.random() < 0.05
    ):
        verification = "online_pin"
    exp_year, exp_month = rng.randint(2027, 2031), rng.randint(1, 12)
    if not valid and rng.random() < 0.01:  # expired before the day
        if day.month > 1:
            exp_year, exp_month = day.year, rng.randint(1, day.month - 1)
        else:
            exp_year, exp_month = day.year - 1, rng.randint(1, 12)
    country = store.country if rng.random() < 0.93 else rng.choice(["GB", "FR", "US", "AU"])
    return {
        "brand": brand,
        "network": network,
        "last4": f"{rng.randint(0, 9999):04d}",
        "exp_month": exp_month,
        "exp_year": exp_year,
        "funding": funding,
        "read_method": read_method,
        "cardholder_verification": verification,
        "country": country,
    }
