"""Stripe's side: the API gateway (`gateway`) and the Stripe service's port over it (`port`),
its exported files (`files`: the report CSV, PaymentIntents or Disputes as JSON, and a
PaymentIntent object as an observation), its webhook events (`events`: refunds, charges and
disputes as observations), reading its PaymentIntents (`sync`) and forwarding stored payments
(`forwarding`). What Stripe's word means for the ledger is decided in `ledger.stripe_service`."""
