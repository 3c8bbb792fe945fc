"""Stripe's side: the API gateway (`gateway`), its exported files (`files`: the report CSV and
PaymentIntents or Disputes as JSON, and a PaymentIntent as an observation), its webhook events
(`events`: refunds, charges and disputes as observations), reading its PaymentIntents (`sync`)
and forwarding stored payments (`forwarding`)."""
