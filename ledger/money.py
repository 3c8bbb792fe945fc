"""Currencies and their minor units.

Amounts are always integers in minor units, as Stripe uses them. The exponent of each currency
follows Stripe's lists of zero-decimal and three-decimal currencies (docs.stripe.com/currencies);
every other ISO 4217 currency has two decimals.
"""

from __future__ import annotations

# Active ISO 4217 codes, lowercase as Stripe writes them.
ISO_4217_CODES: frozenset[str] = frozenset(
    """
    aed afn all amd ang aoa ars aud awg azn bam bbd bdt bgn bhd bif bmd bnd bob brl bsd btn bwp
    byn bzd cad cdf chf clp cny cop crc cup cve czk djf dkk dop dzd egp ern etb eur fjd fkp gbp
    gel ghs gip gmd gnf gtq gyd hkd hnl htg huf idr ils inr iqd irr isk jmd jod jpy kes kgs khr
    kmf kpw krw kwd kyd kzt lak lbp lkr lrd lsl lyd mad mdl mga mkd mmk mnt mop mru mur mvr mwk
    mxn myr mzn nad ngn nio nok npr nzd omr pab pen pgk php pkr pln pyg qar ron rsd rub rwf sar
    sbd scr sdg sek sgd shp sle sll sos srd ssp stn svc syp szl thb tjs tmt tnd top try ttd twd
    tzs uah ugx usd uyu uzs ves vnd vuv wst xaf xcd xof xpf yer zar zmw zwl
    """.split()
)

ZERO_DECIMAL: frozenset[str] = frozenset(
    "bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split()
)
THREE_DECIMAL: frozenset[str] = frozenset("bhd jod kwd omr tnd".split())


def is_currency(code: str) -> bool:
    return code in ISO_4217_CODES


def cap_problem(caps: object) -> str | None:
    """Why `caps` is not a cap per currency on an offline payment (minor units by lowercase
    ISO 4217 code), or None. A key the ledger never meets ("USD", "dollars") would leave that
    currency's cap off without a word, so it is refused rather than kept."""
    if not isinstance(caps, dict):
        return "should be a JSON object of currency: minor units"
    for currency, amount in caps.items():
        if not isinstance(currency, str) or not is_currency(currency):
            return (
                f"{currency!r} is not a currency: use lowercase ISO 4217 codes "
                '(`{"usd": 1000000}`)'
            )
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
            return f"{currency!r} should be a whole number of minor units"
    return None


def exponent(currency: str) -> int:
    """Number of decimals of the currency's minor unit (JPY 0, USD 2, KWD 3)."""
    assert currency in ISO_4217_CODES, currency
    if currency in ZERO_DECIMAL:
        return 0
    if currency in THREE_DECIMAL:
        return 3
    return 2


def format_minor(amount_minor: int, currency: str) -> str:
    """`1250, "usd"` -> `"12.50 USD"`; exact, never through a float."""
    places = exponent(currency)
    sign = "-" if amount_minor < 0 else ""
    whole, fraction = divmod(abs(amount_minor), 10**places)
    body = f"{whole:,}" if places == 0 else f"{whole:,}.{fraction:0{places}d}"
    return f"{sign}{body} {currency.upper()}"


# Stripe refuses to store an offline payment above "10,000 USD or equivalent in your operating
# currency" (docs.stripe.com/terminal/features/operate-offline/collect-card-payments). Stripe
# does not publish the equivalents; these are rounded-down conversions for the currencies of
# the markets where offline mode is available. Override them with the ledger setting
# `stripe_offline_max` (env OFFLINE_LEDGER_STRIPE_OFFLINE_MAX) when your rates differ.
STRIPE_OFFLINE_MAX_DEFAULT: dict[str, int] = {
    "usd": 1_000_000,
    "cad": 1_300_000,
    "eur": 900_000,
    "gbp": 780_000,
    "aud": 1_500_000,
    "nzd": 1_650_000,
    "sgd": 1_300_000,
    "chf": 880_000,
    "sek": 10_000_000,
    "nok": 10_000_000,
    "dkk": 6_800_000,
    "czk": 22_000_000,
    "pln": 3_900_000,
    "huf": 350_000_000,
    "ron": 4_500_000,
    "jpy": 1_400_000,
}
