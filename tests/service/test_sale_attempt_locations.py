"""One offline_id is one sale attempt: a reservation refused at one location, then the same
sale stored (a fact) at another, is that location's stored sale, in the log's fold and in the
offline sales read model alike; the refusal is not counted again as a sale gone online."""

from __future__ import annotations

from datetime import datetime

import pytest

from ledger import Ledger
from ledger.what_if import histories, replay
from projections.read_models import ReadModels
from tests.support import records as r
from tests.support.days import D

TIGHT = {"per_payment_max": {"usd": 5000}, "stored_amount_max": {"usd": 100}}
LOOSE = {"per_payment_max": {"usd": 5000}, "stored_amount_max": {"usd": 5000}}


@pytest.mark.parametrize("caught_up", [False, True], ids=["one-batch", "caught-up-between"])
def test_a_sale_refused_at_one_location_and_stored_at_another_is_the_other_s_sale(
    database: str, caught_up: bool
) -> None:
    with Ledger.open(database) as ledger:
        ledger.record(r.location("tml_1", limits=TIGHT, device_limits={"stored_amount_max": {}}))
        ledger.record(r.location("tml_2", limits=LOOSE, device_limits={"stored_amount_max": {}}))
        ledger.record(r.device("tmr_1", "tml_1"))
        ledger.record(r.device("tmr_2", "tml_2"))
        asked = datetime.fromisoformat(r.at(5))
        assert not ledger.reserve(D, 400, "usd", "tmr_1", "tml_1", at=asked).granted
        with ReadModels(ledger) as models:
            if caught_up:
                (refused,) = (h for h in models.sale_histories() if h.location_id == "tml_1")
                assert [(s.offline_id, s.refused) for s in refused.sales] == [(D, True)]
        ledger.record_many(r.stored_payment(D, amount=400, device_id="tmr_2", location_id="tml_2"))
        with ReadModels(ledger) as models:
            from_rows = {h.location_id: h for h in models.sale_histories()}
        from_log = {h.location_id: h for h in histories(ledger.store)}
        assert from_rows == from_log
        assert from_log["tml_1"].sales == []
        (stored,) = from_log["tml_2"].sales
        assert (stored.offline_id, stored.device_id, stored.refused) == (D, "tmr_2", False)
        assert ledger.payment(D).location_id == "tml_2"
        # Replayed as recorded, nobody refused it and it is stored once, where it was.
        for history in from_log.values():
            again = replay(history, ledger.policy, refused_go_online=False)
            assert all(not judged.breaches for judged in again.judged)
        assert sum(len(h.sales) for h in from_log.values()) == 1
