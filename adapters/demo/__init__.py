"""`offline-ledger demo`: a realistic trading day, recorded, reconciled and reported.

Everything is simulated, and the same seed always gives the same day, the same files and the
same report (times come from the simulated day, never from the clock). The day, 2026-11-20:

- Four locations: New York (USD), Toronto (CAD), Berlin (EUR, strong customer authentication)
  and Tokyo (JPY, no decimals), each with a few readers and offline limits.
- Sales arrive through the opening hours, busier at lunch and in the evening. Each location
  loses its internet connection for a few hours; the readers store the sales taken meanwhile,
  and the POS backend records every step through the library API (`Ledger.record_many`),
  as in production. Sales taken online go straight to Stripe: the ledger never sees them.
- What the readers did is recorded as facts, never refused; the offline rules flag some of
  them: swiped cards, contactless taps in Berlin, Interac and girocard cards, online PIN,
  expired cards (the customer then inserts the card or pays with another one), a spare reader
  that has not been online for 42 days, baskets over the per-payment limit, New York's last
  sales once its stored total passed the location's limit during its four-hour outage, and
  the busiest Toronto reader once it held its maximum count. Before that outage New York's
  readers were granted offline allowances carved out of the location's limit; the sales a
  reader stored beyond its allowance are flagged OFFLINE_ALLOWANCE_EXCEEDED, naming it.
- When the network is back, each reader forwards its stored payments, oldest first: a few
  fail once and are retried, a few are declined by the issuer, one is forwarded twice (two
  PaymentIntents) and one never leaves its reader. Manual-capture authorizations are captured
  later (one partially, one is voided), except open New York tabs, Berlin orders not picked
  up yet and Tokyo reader 2's, whose end-of-day capture never ran: by the time of the report
  the two-day window of their Mastercard and JCB cards is almost over.
- The next day at 12:20 New York loses the network again for half an hour.
- Stripe's side is written as Stripe gives it: the itemized payout reconciliation report
  (CSV) with every charge (online sales too), a full and a partial refund, three disputes
  (open, lost, won back), a partial capture (the charge and its `partial_capture_reversal`),
  a Toronto payment settled in USD, and the payout of each movement, in which one charge has
  another amount than its sale, one belongs to no sale the ledger knows and one forwarded
  payment is missing; the PaymentIntents that moved no money (authorizations awaiting
  capture, declines, voids) as the API lists them (JSON); and the disputes (JSON), whose
  status the report cannot give. They are imported with the code behind
  `import-stripe-report`, `import-stripe-json` and `import-stripe-disputes`.

The reconciliation report is evaluated as of 2026-11-21 18:00 UTC and written in every format.

The package, by concern: `merchant` (the locations, the day, a sale), `scenario` (the day's
script and the wire records it sends), `stripe_side` (Stripe's files), `runner` (the run) and
`summary` (what is printed at the end).
"""

from adapters.demo.runner import (
    DEMO_FILES,
    OUT_DEFAULT,
    PAYMENTS_DEFAULT,
    PAYMENTS_MAX,
    PAYMENTS_MIN,
    REPORT_FILES,
    SEED_DEFAULT,
    DemoExists,
    DemoSummary,
    Phase,
    run,
)
from adapters.demo.scenario import EXPECTED_BREACHES
from adapters.demo.summary import print_summary

__all__ = [
    "DEMO_FILES",
    "EXPECTED_BREACHES",
    "OUT_DEFAULT",
    "PAYMENTS_DEFAULT",
    "PAYMENTS_MAX",
    "PAYMENTS_MIN",
    "REPORT_FILES",
    "SEED_DEFAULT",
    "DemoExists",
    "DemoSummary",
    "Phase",
    "print_summary",
    "run",
]
