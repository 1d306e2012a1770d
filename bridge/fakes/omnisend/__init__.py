"""A fake Omnisend: the 2026-03-15 `/api` events, contacts, products, categories and batches, and v3
contacts, orders and carts.

Contracts enforced, from docs/reference/apis.md section 1:
- `/api/*`: `Authorization: Omnisend-API-Key <key>` and `Omnisend-Version` (wrong key -> 401, missing
  or unknown version -> 400); errors are RFC 9457 problem JSON with `errors[{field, code, message}]`.
- `/v3/*`: `X-API-KEY: <key>`; errors are `{"error": ..., "fields": {...}}`; missing mandatory
  fields -> 422, wrong types (money must be integer cents) -> 400.
- Events (1.2): `eventTime` RFC 3339 or `YYYY-MM-DD HH:MM:SS±HH:MM`; `eventVersion` the documented
  value of a recommended event, empty or absent for the cart events and custom events; `eventID` a
  UUID v4-v7; `contact` maxLengths, `phone` E.164, `birthdate` YYYY-MM-DD, `gender` m|f, tags and
  opt-in/out/consent lists; the recommended events' documented property types (prices numbers,
  `orderNumber` an integer, cart events' `currency` ISO 4217). All -> 400 with every failing field.
- v3 formats (1.4-1.6) -> 400: order `createdAt`, cart `createdAt`/`updatedAt` ISO 8601, cart
  `currency` 3 characters and `cartRecoveryUrl` a URI, `discountType`, `paymentStatus` and
  `fulfillmentStatus` enums, `countryCode` 2 characters (orders' addresses, contacts), contact
  `birthdate`, identifier channels (`email` for email, `sms` for phone) and their `status` values.
- 400 requests per sliding minute for the whole brand, `X-Rate-Limit-Limit/Remaining/Reset`
  (seconds left) on every answer, 429 with `Retry-After` when over.
- 2026 contacts (`POST /api/contacts` upsert by email, 201/200; `PATCH /api/contacts?email=` update, 404
  for an unknown email): `ContactRequest` checks (`contact_request_problems`); channels are optional, and
  an identifier created without one is stored as `subscribed` (the worst case, for tests to rule out).
- 2026 products (`POST /api/products` 201 / 409 when it exists, `PUT /api/products/{id}` 200 / 404) and
  categories (`POST /api/product-categories` 201 / 409, `PATCH /api/product-categories/{categoryID}` 200 /
  404): `product_problems`, `category_problems`.
- v3 carts: a `PATCH` must carry `currency` and `cartSum` (422 otherwise); `DELETE /v3/carts/{cartID}` 204, 404
  when there is no such cart.
- Batches: 201 `{batchID, totalCount}`, `inProgress` for `processing_seconds`, then `finished`
  with per-item `responseCode` under `responses` / `errors`.
- v3 batches (`/v3/batches`, apis.md 1.7): `X-API-KEY`; `{method, endpoint, items, eventID?}` with
  1..1000 items, PUT only for products/orders, `eventID` required for (and only for) `events`;
  200 `{batchID, totalCount}`, `pending` for `processing_seconds`, then `finished`. Contact and
  order items get the same checks as `POST /v3/contacts` / `POST|PUT /v3/orders`; accepted ones
  land in `contacts` / `orders`.
"""

from __future__ import annotations

from bridge.fakes.omnisend.app import create_omnisend_app

__all__ = ["create_omnisend_app"]
