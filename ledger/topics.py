"""Where the stored topics of the ledger's streams lead: `offline_ledger:Payment.Created` is
the class `Created` of the aggregate `Payment`, in the module `ledger.payment`.

Each aggregate registers its own topics with the library (`eventsourcing.utils.register_topic`)
when its module is imported. A command that reads one kind of stream (`status` reads
locations and devices) imports only their modules, and the event it meets from another
stream (the first event, read when the ledger opens; any event of the log, for the audit
and the projections) is still resolved: the library looks up `offline_ledger` itself, which
is this module, whose attributes are the aggregates, each imported when first asked for.
"""

from __future__ import annotations

import sys
from importlib import import_module

from eventsourcing.utils import register_topic

PREFIX = "offline_ledger"

# Each aggregate whose topics start with PREFIX, and the module that defines it.
MODULES = {
    "CipherKeys": "ledger.cipher",
    "Device": "ledger.device",
    "IdempotencyKey": "ledger.idempotency",
    "Location": "ledger.location",
    "Payment": "ledger.payment",
    "Reservation": "ledger.reservation",
    "Seals": "ledger.seal",
    "StripeAccountMode": "ledger.stripe_object",
    "StripeEvent": "ledger.stripe_object",
    "StripeObject": "ledger.stripe_object",
}


def __getattr__(name: str) -> type:
    """The aggregate `name`, its module imported (which registers its topics)."""
    try:
        module = MODULES[name]
    except KeyError:
        raise AttributeError(f"no aggregate {name!r} has topics under {PREFIX!r}") from None
    aggregate: type = getattr(import_module(module), name)
    return aggregate


register_topic(PREFIX, sys.modules[__name__])
