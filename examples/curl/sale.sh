#!/usr/bin/env bash
# One offline sale through the ledger's HTTP API, as a POS backend in any language makes it:
# the reader connected online, the sale's headroom reserved, the sale's three steps recorded,
# then the payment and the queue of payments still stored on the location's readers.
#
#   OFFLINE_LEDGER_API=http://127.0.0.1:8000 OFFLINE_LEDGER_API_KEY=olk_... examples/curl/sale.sh
#
# The key is a pos (or admin) key for the location (`offline-ledger keys create --role pos
# --location tml_1 --name till`); the location is configured first (see README.md here).
set -euo pipefail

API="${OFFLINE_LEDGER_API:-http://127.0.0.1:8000}"
KEY="${OFFLINE_LEDGER_API_KEY:?set OFFLINE_LEDGER_API_KEY (offline-ledger keys create)}"
LOCATION="${LOCATION:-tml_1}"
DEVICE="${DEVICE:-tmr_1}"
AMOUNT="${AMOUNT:-1250}"
# The device makes the sale's id (a UUID) before the sale starts and puts it in the
# PaymentIntent's metadata.offline_id: offline, it is the only id the sale has.
OFFLINE_ID="$(cat /proc/sys/kernel/random/uuid 2>/dev/null || uuidgen | tr 'A-Z' 'a-z')"
NOW="$(date -u +%Y-%m-%dT%H:%M:%SZ)"

# POST a JSON body; a refusal (4xx, 5xx) prints its problem details and stops the script.
# The Idempotency-Key names the record: after a timeout, send the very same request again.
post() {
  curl --silent --show-error --fail-with-body \
    -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" \
    -H "Idempotency-Key: $1" --data "$3" "$API$2"
  echo
}
get() {
  curl --silent --show-error --fail-with-body -H "Authorization: Bearer $KEY" "$API$1"
  echo
}

post "$DEVICE:online:$NOW" /v1/records '{"type": "device.connected_online",
  "occurred_at": "'"$NOW"'", "device_id": "'"$DEVICE"'", "location_id": "'"$LOCATION"'",
  "software_updated_at": "'"$NOW"'"}'

# Granted: pass offline_behavior (prefer_online) to the SDK; refused: require_online.
post "$OFFLINE_ID:reserve" /v1/reservations '{"offline_id": "'"$OFFLINE_ID"'",
  "amount": '"$AMOUNT"', "currency": "usd", "device_id": "'"$DEVICE"'",
  "location_id": "'"$LOCATION"'"}'

post "$OFFLINE_ID:created" /v1/records '{"type": "payment.created", "occurred_at": "'"$NOW"'",
  "offline_id": "'"$OFFLINE_ID"'", "device_id": "'"$DEVICE"'", "location_id": "'"$LOCATION"'",
  "amount": '"$AMOUNT"', "currency": "usd"}'
post "$OFFLINE_ID:collected" /v1/records '{"type": "payment.payment_method_collected",
  "occurred_at": "'"$NOW"'", "offline_id": "'"$OFFLINE_ID"'", "card": {"brand": "visa",
  "last4": "4242", "exp_month": 12, "exp_year": 2030, "read_method": "contact_emv"}}'
post "$OFFLINE_ID:confirmed" /v1/records '{"type": "payment.confirmed_offline",
  "occurred_at": "'"$NOW"'", "offline_id": "'"$OFFLINE_ID"'", "stored_at": "'"$NOW"'"}'

get "/v1/payments/$OFFLINE_ID"
get "/v1/locations/$LOCATION/stored-payments?device_id=$DEVICE"
