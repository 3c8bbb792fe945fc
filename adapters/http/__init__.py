"""What `offline-ledger serve` answers over HTTP: Stripe's webhooks, and the bounds one client
may hold of the server (`http_limits`, enforced per connection by `bounded_http`)."""
