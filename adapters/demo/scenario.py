"""The day's script: when each sale happens, with which card, which sales the outages store and
what becomes of them, as the wire records a POS backend sends to the ledger."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from adapters.demo.merchant import (
    BERLIN,
    DAY,
    NEW_YORK,
    NEXT_DAY_OUTAGE,
    ROLES,
    STORES,
    TOKYO,
    TORONTO,
    Record,
    Sale,
    Store,
)
from adapters.trading_day import (
    device_connected,
    draws,
    payment_step,
    random_id,
    random_offline_id,
)
from ledger.errors import Code
from ledger.money import exponent

# The breaches the day is built to provoke; any other code would be a bug in the simulation.
EXPECTED_BREACHES = frozenset(
    {
        Code.OFFLINE_ALLOWANCE_EXCEEDED,
        Code.AMOUNT_EXCEEDS_MAX_OFFLINE_AMOUNT,
        Code.STORED_AMOUNT_LIMIT_EXCEEDED,
        Code.OFFLINE_PAYMENTS_DATABASE_TOO_LARGE,
        Code.CARD_SWIPE_NOT_AVAILABLE,
        Code.CONTACTLESS_NOT_ALLOWED_OFFLINE,
        Code.INTERAC_NOT_SUPPORTED_OFFLINE,
        Code.PAYMENT_METHOD_NOT_SUPPORTED_OFFLINE,
        Code.ONLINE_PIN_NOT_SUPPORTED_OFFLINE,
        Code.OFFLINE_AND_CARD_EXPIRED,
        Code.READER_CONNECTION_NOT_AVAILABLE_OFFLINE,
    }
)
DECLINE_CODES = (
    "insufficient_funds",
    "do_not_honor",
    "generic_decline",
    "lost_card",
    "card_velocity_exceeded",
)


@dataclass(frozen=True)
class Entry:
    """A wire record, when it happened, and what to do with the ledger's answer."""

    when: datetime
    sequence: int
    record: Record
    sale: Sale | None = None


class TradingDay:
    def __init__(self, rng: random.Random, payments: int) -> None:
        self.rng = rng
        self.payments = payments
        self.sequence = 0
        self.ids: set[str] = set()
        self.limits: dict[str, Record] = {}

    # -- the sales --------------------------------------------------------------------------

    def sales(self) -> list[Sale]:
        """Every sale of the day, online and offline, with the outages' script assigned."""
        next_day = max(2, self.payments // 1_000)
        counts = draws.apportion(self.payments - next_day, [s.weight for s in STORES])
        sales: list[Sale] = []
        for store, count in zip(STORES, counts, strict=True):
            offline = min(count - 1, max(8, round(count * _outage_share(store))))
            times = [
                (draws.sale_moment(self.rng, store, *store.outage, DAY), True)
                for _ in range(offline)
            ]
            times += [(self._online_moment(store), False) for _ in range(count - offline)]
            for created_at, is_offline in sorted(times):
                sales.append(self._sale(len(sales) + 1, store, created_at, is_offline))
        tomorrow = DAY + timedelta(days=1)
        for created_at in sorted(
            draws.sale_moment(self.rng, NEW_YORK, *NEXT_DAY_OUTAGE, tomorrow)
            for _ in range(next_day)
        ):
            sale = self._sale(len(sales) + 1, NEW_YORK, created_at, True)
            self._plain(sale, "next_day", manual=False)
            sales.append(sale)
        self._script_the_outages(sales)
        self._set_limits(sales)
        return sales

    def _online_moment(self, store: Store) -> datetime:
        start, end = (store.at(hour) for hour in store.outage)
        while True:
            moment = draws.sale_moment(self.rng, store, store.opens, store.closes, DAY)
            if not start <= moment < end:
                return moment

    def _sale(self, number: int, store: Store, created_at: datetime, offline: bool) -> Sale:
        rng = self.rng
        readers = store.reader_ids()
        device_id = rng.choices(readers, weights=range(len(readers), 0, -1))[0]
        sale = Sale(
            number, store, device_id, created_at, draws.basket_amount(self.rng, store), offline
        )
        if not offline:
            return sale
        sale.offline_id = random_offline_id(rng)
        sale.manual = rng.random() < store.manual_share
        first = draws.card(self.rng, store, DAY)
        sale.cards.append(first)
        if _refused_card(first, store):
            if _insert_fixes(first) and rng.random() < 0.9:
                sale.cards.append(_inserted(first))
            elif rng.random() < 0.7:
                sale.cards.append(draws.card(self.rng, store, DAY, valid=True))
            else:
                sale.pays_cash = True
        sale.walks_away = not sale.pays_cash and rng.random() < 0.01
        return sale

    def _plain(self, sale: Sale, role: str, manual: bool, brand: str | None = None) -> None:
        """Give a sale its part in the script, played plainly: a valid card inserted,
        nothing refused, nobody changes their mind."""
        assert role in ROLES, role
        card = draws.card(self.rng, sale.store, DAY, valid=True)
        if brand is not None:
            card.update(brand=brand, network=brand)
        sale.cards = [_inserted(card)]
        sale.manual = manual
        sale.pays_cash = sale.walks_away = False
        sale.amount = min(sale.amount, sale.store.per_payment_max // 2)
        sale.role = role

    def _script_the_outages(self, sales: list[Sale]) -> None:
        """The parts decided before the day: they change what the POS sends while offline."""
        rng = self.rng

        def cast(store: Store, count: int, early: bool = False) -> list[Sale]:
            """`count` offline sales of the outage with no part yet, early in it if asked."""
            start, end = store.outage
            middle = store.at((start + end) / 2)
            free = [s for s in sales if s.store is store and s.offline and not s.role]
            early_ones = [s for s in free if s.created_at < middle]
            chosen = rng.sample(early_ones, min(count, len(early_ones))) if early else []
            rest = [s for s in free if s not in chosen]
            return chosen + rng.sample(rest, min(count - len(chosen), len(rest)))

        # Two New York tabs authorized early in the outage: one is voided, one stays open.
        voided, still_open = cast(NEW_YORK, 2, early=True)
        self._plain(voided, "tab_voided", manual=True, brand="mastercard")
        self._plain(still_open, "tab_open", manual=True, brand="mastercard")
        voided.voided_at = voided.created_at + timedelta(hours=6)
        # Tokyo reader 2's end-of-day capture never runs; one of its authorizations is a JCB.
        (sale,) = cast(TOKYO, 1)
        self._plain(sale, "jcb_uncaptured", manual=True, brand="jcb")
        sale.device_id = TOKYO.reader_ids()[1]
        # Baskets over the per-payment limit.
        for store in (NEW_YORK, TOKYO):
            (sale,) = cast(store, 1)
            self._plain(sale, "over_limit", manual=False)
            step = 10 ** exponent(store.currency) * (100 if store.currency == "jpy" else 1)
            sale.amount = store.per_payment_max + step * rng.randint(20, 400)
        # New York brings out its spare reader, which has not been online for 42 days.
        for sale in cast(NEW_YORK, 1 + (self.payments >= 1_000), early=True):
            self._plain(sale, "spare_reader", manual=False)
            sale.device_id = NEW_YORK.spare_reader_id

    def _set_limits(self, sales: list[Sale]) -> None:
        """Each location's offline limits. The merchant sized them for a normal day, so New
        York's outage reaches its stored amount limit near the end, and Toronto's busiest
        reader its stored count limit; elsewhere they are far from reach."""
        for store in STORES:
            storable = [
                s
                for s in sales
                if s.store is store and s.role != "next_day" and _will_be_confirmed(s)
            ]
            total = sum(s.amount for s in storable)
            busiest = max(Counter(s.device_id for s in storable).values(), default=1)
            unit = 10 ** (exponent(store.currency) + 2)  # 100 major units
            generous = _round_up(2 * total + 1, unit * 10)
            location_amount, device_count = generous, min(1_000_000, 2 * busiest + 10)
            if store is NEW_YORK:  # about five baskets short of the outage's total
                typical = round(store.median_basket) * 10 ** exponent(store.currency)
                location_amount = max(unit, (total - 5 * typical) // (unit // 10) * (unit // 10))
            if store is TORONTO:
                device_count = max(1, busiest - 2)
            self.limits[store.location_id] = {
                "limits": {
                    "per_payment_max": {store.currency: store.per_payment_max},
                    "stored_amount_max": {store.currency: location_amount},
                    "stored_count_max": min(1_000_000, 2 * len(storable) + 10),
                },
                "device_limits": {
                    "stored_amount_max": {store.currency: generous},
                    "stored_count_max": device_count,
                },
            }

    # -- what the POS sends during the outages -------------------------------------------------

    def outage_records(self, sales: list[Sale]) -> list[Entry]:
        """Locations and readers, then every offline sale up to its confirmation."""
        entries: list[Entry] = []
        configured = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
        for store in STORES:
            entries.append(
                self._entry(
                    configured,
                    {
                        "type": "location.configured",
                        "occurred_at": _text(configured.astimezone(store.tz)),
                        "location_id": store.location_id,
                        "offline_enabled": True,
                        "sca_required": store.sca_required,
                        **self.limits[store.location_id],
                    },
                )
            )
            connected = store.at(store.opens - 0.5)
            updated = store.at(9.0, date(2026, 11, 17))
            for index, reader in enumerate(store.reader_ids()):
                moment = connected + timedelta(seconds=17 * index)
                entries.append(self._entry(moment, _device(store, reader, moment, updated)))
        last_seen = NEW_YORK.at(16.0, date(2026, 10, 9))
        entries.append(
            self._entry(
                last_seen, _device(NEW_YORK, NEW_YORK.spare_reader_id, last_seen, last_seen)
            )
        )
        for sale in sales:
            if sale.offline and sale.role != "next_day":
                entries.extend(self._sale_records(sale))
        return entries

    def _sale_records(self, sale: Sale) -> list[Entry]:
        """created, the cards presented, then confirmed offline (stored) or canceled."""
        rng = self.rng
        store = sale.store
        moment = sale.created_at
        entries = [
            self._entry(
                moment,
                {
                    "type": "payment.created",
                    "occurred_at": _text(moment),
                    "offline_id": sale.offline_id,
                    "device_id": sale.device_id,
                    "location_id": store.location_id,
                    "amount": sale.amount,
                    "currency": store.currency,
                    "capture_method": "manual" if sale.manual else "automatic",
                    "offline_behavior": "prefer_online",
                    "payment_intent_id": None,
                    "metadata": {
                        "order": f"{store.country}-{sale.number:06d}",
                        "lane": sale.device_id.rsplit("_", 1)[-1],
                    },
                },
                sale,
            )
        ]
        for index, card in enumerate(sale.cards):
            moment += timedelta(seconds=rng.randint(8, 30) if index == 0 else rng.randint(15, 50))
            entries.append(
                self._entry(
                    moment,
                    {
                        "type": "payment.payment_method_collected",
                        "occurred_at": _text(moment),
                        "offline_id": sale.offline_id,
                        "card": card,
                    },
                    sale,
                )
            )
        if sale.pays_cash or sale.walks_away:
            moment += timedelta(seconds=rng.randint(20, 60))
            entries.append(self._entry(moment, _canceled(sale, moment, "requested_by_customer")))
            return entries
        moment += timedelta(seconds=rng.randint(1, 5))
        sale.confirmed_at = moment
        entries.append(self._entry(moment, _confirmed(sale), sale))
        return entries

    # -- what happens once the network is back -------------------------------------------------

    def after_outage_records(self, sales: list[Sale]) -> list[Entry]:
        """Cancels of the sales a limit refused, forwarding, declines, captures, voids, a few
        resent records, and the next day's short outage."""
        rng = self.rng
        entries: list[Entry] = []
        offline = [s for s in sales if s.offline and s.role != "next_day"]
        for sale in offline:
            if sale.confirmed_at is not None and not sale.stored:
                # Refused when confirmed: the customer pays another way.
                moment = sale.confirmed_at + timedelta(seconds=rng.randint(20, 60))
                entries.append(
                    self._entry(moment, _canceled(sale, moment, "requested_by_customer"))
                )
        stored = [s for s in offline if s.stored]
        self._script_the_forwarding(stored)
        for store in STORES:
            for reader in store.reader_ids():
                queue = sorted(
                    (s for s in stored if s.device_id == reader and s.forwarded),
                    key=lambda s: s.created_at,
                )
                moment = store.at(store.outage[1]) + timedelta(seconds=rng.randint(20, 90))
                for sale in queue:
                    moment += timedelta(milliseconds=rng.randint(1_500, 4_000))
                    entries.extend(self._forwarding(sale, moment.replace(microsecond=0)))
        # The POS resends a few confirmations after a timeout: repeats, recorded once.
        for sale in rng.sample(stored, max(1, len(stored) // 100)):
            assert sale.confirmed_at is not None
            entries.append(self._entry(sale.confirmed_at + timedelta(minutes=5), _confirmed(sale)))
        for sale in sales:
            if sale.role == "next_day":
                entries.extend(self._sale_records(sale))
        return entries

    def _script_the_forwarding(self, stored: list[Sale]) -> None:
        """The parts decided after the outage, among the payments the ledger stored."""
        rng = self.rng
        pool = [s for s in stored if not s.role]
        rng.shuffle(pool)

        def cast(role: str, store: Store | None, manual: bool | None = False) -> None:
            for preferred in (store, None):
                for sale in pool:
                    if (preferred is None or sale.store is preferred) and (
                        manual is None or sale.manual == manual
                    ):
                        pool.remove(sale)
                        sale.role = role
                        return

        cast("lost", BERLIN)
        cast("missing", BERLIN)
        cast("duplicate", NEW_YORK)
        cast("refund", NEW_YORK)
        cast("partial_refund", BERLIN)
        cast("dispute_open", NEW_YORK)
        cast("dispute_lost", TORONTO)
        cast("dispute_won", BERLIN)
        cast("converted", TORONTO)
        cast("mismatch", TORONTO)
        cast("partial", BERLIN, manual=True)
        for _ in range(max(2, round(len(stored) * 0.015))):
            cast("declined", None, manual=None)
        for sale in stored:
            if sale.role in ("refund", "partial_refund"):
                sale.refunded_at = NEW_YORK.at(10.5, DAY + timedelta(days=1))
                sale.refund_amount = sale.amount if sale.role == "refund" else sale.amount // 3
            elif sale.role.startswith("dispute_"):
                sale.disputed_at = sale.store.at(9, DAY + timedelta(days=1))
            elif sale.role == "partial":
                sale.amount_captured = max(1, sale.amount * 3 // 4)
            elif sale.role == "declined":
                sale.decline_code = rng.choice(DECLINE_CODES)

    def _forwarding(self, sale: Sale, moment: datetime) -> list[Entry]:
        """A stored payment's records once its reader forwards it at `moment`."""
        rng = self.rng
        entries: list[Entry] = []
        if sale.role != "declined" and rng.random() < 0.04:
            entries.append(
                self._entry(
                    moment,
                    {
                        "type": "payment.forward_failed",
                        "occurred_at": _text(moment),
                        "offline_id": sale.offline_id,
                        "error_code": "api_connection_error",
                        "message": "the connection dropped again while forwarding",
                        "retryable": True,
                    },
                )
            )
            moment += timedelta(seconds=rng.randint(40, 120))
        sale.payment_intent_id, sale.charge_id = self.payment_intent_ids()
        sale.forwarded_at = moment
        if sale.role == "declined":
            entries.append(
                self._entry(
                    moment,
                    {
                        "type": "payment.declined",
                        "occurred_at": _text(moment),
                        "offline_id": sale.offline_id,
                        "payment_intent_id": sale.payment_intent_id,
                        "decline_code": sale.decline_code,
                    },
                )
            )
            return entries
        entries.append(
            self._entry(
                moment,
                _forwarded(
                    sale,
                    sale.payment_intent_id,
                    moment,
                    "requires_capture" if sale.manual else "succeeded",
                ),
            )
        )
        if sale.role == "duplicate":
            # The reader's forward timed out and it sent the payment again: a second
            # PaymentIntent, charged too.
            sale.duplicate_payment_intent_id, _ = self.payment_intent_ids()
            sale.duplicate_at = moment + timedelta(seconds=rng.randint(180, 420))
            entries.append(
                self._entry(
                    sale.duplicate_at,
                    _forwarded(
                        sale, sale.duplicate_payment_intent_id, sale.duplicate_at, "succeeded"
                    ),
                )
            )
        if not sale.manual:
            return entries
        if sale.voided_at is not None:
            entries.append(self._entry(sale.voided_at, _canceled(sale, sale.voided_at, "voided")))
            return entries
        captured_at = self._capture_time(sale, moment)
        if captured_at is not None:
            sale.captured_at = captured_at
            sale.amount_captured = sale.amount_captured or sale.amount
            entries.append(
                self._entry(
                    captured_at,
                    {
                        "type": "payment.captured",
                        "occurred_at": _text(captured_at),
                        "offline_id": sale.offline_id,
                        "payment_intent_id": sale.payment_intent_id,
                        "amount_captured": sale.amount_captured,
                    },
                )
            )
        return entries

    def _capture_time(self, sale: Sale, forwarded_at: datetime) -> datetime | None:
        """When the authorization is captured; None if it is still open at the report."""
        rng = self.rng
        store = sale.store
        if sale.role == "partial":
            return forwarded_at + timedelta(hours=2)
        if sale.role in ("tab_open", "jcb_uncaptured"):
            return None
        if store is TOKYO:
            if sale.device_id != TOKYO.reader_ids()[0]:
                return None  # reader 2's end-of-day capture never ran
            return store.at(store.closes) + timedelta(seconds=rng.randint(5, 600))
        if rng.random() < (0.15 if store is NEW_YORK else 0.3):
            return None  # tabs not closed yet, orders not picked up yet
        minutes = rng.randint(60, 180) if store is NEW_YORK else rng.randint(30, 360)
        return forwarded_at + timedelta(minutes=minutes, seconds=rng.randint(0, 59))

    # -- helpers --------------------------------------------------------------------------------

    def _entry(self, when: datetime, record: Record, sale: Sale | None = None) -> Entry:
        self.sequence += 1
        return Entry(when, self.sequence, record, sale)

    def unique_id(self, prefix: str, length: int = 24) -> str:
        while True:
            candidate = random_id(self.rng, prefix, length)
            if candidate not in self.ids:
                self.ids.add(candidate)
                return candidate

    def payment_intent_ids(self) -> tuple[str, str]:
        """A PaymentIntent id and its charge's, as Stripe makes them (the same suffix)."""
        payment_intent_id = self.unique_id("pi_3Q")
        return payment_intent_id, "ch_" + payment_intent_id.removeprefix("pi_")


def _outage_share(store: Store) -> float:
    """The share of a store's sales that fall in its outage (by the rush-hour curve)."""

    return draws.rush_area(*store.outage) / draws.rush_area(store.opens, store.closes)


def _expired(card: dict[str, Any]) -> bool:
    return (card["exp_year"], card["exp_month"]) < (DAY.year, DAY.month)


def _refused_card(card: dict[str, Any], store: Store) -> bool:
    """Whether the offline card rules refuse this card here (`ledger.limits.check_card`)."""
    return (
        card["brand"] == "interac"
        or card["network"] == "girocard"
        or card["read_method"].startswith("magnetic_stripe")
        or (store.sca_required and card["read_method"] == "contactless_emv")
        or card["cardholder_verification"] == "online_pin"
        or _expired(card)
    )


def _insert_fixes(card: dict[str, Any]) -> bool:
    """A swipe, a tap where SCA applies or an online PIN: inserting the same card works."""
    return card["brand"] != "interac" and card["network"] != "girocard" and not _expired(card)


def _inserted(card: dict[str, Any]) -> dict[str, Any]:
    return {**card, "read_method": "contact_emv", "cardholder_verification": "offline_pin"}


def _will_be_confirmed(sale: Sale) -> bool:
    """A sale whose confirmation only the stored amount and count limits may still refuse."""
    return (
        sale.offline
        and not sale.pays_cash
        and not sale.walks_away
        and not _refused_card(sale.card, sale.store)
        and sale.amount <= sale.store.per_payment_max
        and sale.device_id != sale.store.spare_reader_id
    )


def _device(store: Store, reader: str, moment: datetime, updated: datetime) -> Record:
    reader_type = "stripe_s700" if reader.endswith("_1") else "bbpos_wisepos_e"
    return device_connected(_text(moment), reader, store.location_id, reader_type, _text(updated))


def _confirmed(sale: Sale) -> Record:
    assert sale.confirmed_at is not None
    moment = _text(sale.confirmed_at)
    return payment_step("payment.confirmed_offline", moment, sale.offline_id, stored_at=moment)


def _forwarded(sale: Sale, payment_intent_id: str, moment: datetime, status: str) -> Record:
    return payment_step(
        "payment.forwarded",
        _text(moment),
        sale.offline_id,
        payment_intent_id=payment_intent_id,
        status=status,
    )


def _canceled(sale: Sale, moment: datetime, reason: str) -> Record:
    return payment_step("payment.canceled", _text(moment), sale.offline_id, reason=reason)


def _text(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _round_up(value: int, unit: int) -> int:
    return -(-value // unit) * unit
