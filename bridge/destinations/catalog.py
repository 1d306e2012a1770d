"""What each destination record type requires: shared by rule checks, the engine and the adapters.

Facts from docs/reference/apis.md (Omnisend sections 1.2-1.7, Ometria 2.2-2.5, Omneo 3.7).
Paths are dotted; `any_of` groups need at least one non-empty member.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.errors import ConfigError

# Areas of access: what a message may write at its destination. The operator
# allows them per destination (OMNISEND_AREAS, OMETRIA_AREAS, OMNEO_AREAS); consent and
# deletions are off unless allowed (docs/rules.md "Data safety"). The catalogue
# (products) is on by default: it changes no one's messages.
AREAS = ("events", "contacts", "consent", "orders", "carts", "products", "deletions")
DEFAULT_AREAS = ("events", "contacts", "orders", "carts", "products")
# Omnisend's `orders` area is its v3 order resources (its order events are `events`). Stores whose
# automations run on v3 orders turn them on by adding `orders` to OMNISEND_AREAS; by default they are
# off, as they would double the automations the order events start (mappings/README.md).
OMNISEND_DEFAULT_AREAS = ("events", "contacts", "carts", "products")
# Omneo takes profiles only: its one area by default is contacts (consent is allowed with OMNEO_AREAS).
OMNEO_DEFAULT_AREAS = ("contacts",)


def parse_areas(value: str | None, variable: str, default: tuple[str, ...] = DEFAULT_AREAS) -> tuple[str, ...]:
    """`events,contacts,consent` -> the areas in canonical order; unset or blank -> the default; `none` -> ()."""
    if value is None or not value.strip():
        return default
    names = [part.strip().lower() for part in value.split(",") if part.strip()]
    if names == ["none"]:
        return ()
    unknown = [name for name in names if name not in AREAS]
    if unknown:
        raise ConfigError(f"{variable}: unknown area(s) {', '.join(map(repr, unknown))}; "
                          f"valid names: {', '.join(AREAS)} (or `none`)")
    return tuple(area for area in AREAS if area in names)


@dataclass(frozen=True)
class KindSpec:
    destination: str
    kind: str
    area: str  # the area every record of this kind writes: events | contacts | orders | carts | products
    required: tuple[str, ...]
    any_of: tuple[tuple[str, ...], ...] = ()
    fields: tuple[str, ...] = ()  # known top-level fields, for "did you mean"
    actions: tuple[str, ...] = ("upsert",)
    key_fields: tuple[str, ...] = ()  # where the default ordering key comes from
    # actions that name the record and change part of it (an order's status, a cart's closing): they need
    # only the first key field, not `required` / `any_of`
    partial_actions: tuple[str, ...] = ()


# maxLength of an event's `contact` fields (apis.md 1.2, contactDto.Contact). The adapter shortens longer
# text (a 60-character name would make Omnisend refuse the whole event); a phone is never cut, and one
# over its maxLength is left out when the contact has an email or id.
OMNISEND_CONTACT_MAX_LENGTHS = {
    "firstName": 50, "lastName": 50, "address": 500, "city": 100, "state": 100, "country": 100,
    "countryCode": 3, "postalCode": 20,
}
OMNISEND_CONTACT_PHONE_MAX_LENGTH = 15

# Fields that are numbers or booleans at the destination (apis.md 1.2, 1.4, 1.5, 2.4): text there
# ("221.35", from a rule that forgot `| decimal`) is refused or misread, often only later.
# `[]` is every element of a list. Checked on the examples' output (`bridge mappings test`).
_EVENT_ITEM = ("productPrice", "productDiscount", "productStrikeThroughPrice", "productQuantity")
_V3_ITEM = ("price", "quantity", "discount")
NUMBER_FIELDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("omnisend", "event"): (
        "properties.totalPrice", "properties.subTotalPrice", "properties.totalDiscount", "properties.totalTax",
        "properties.shippingPrice", "properties.value", "properties.orderNumber", "properties.totalRefundedAmount",
        *(f"properties.lineItems[].{f}" for f in _EVENT_ITEM), *(f"properties.addedItem.{f}" for f in _EVENT_ITEM),
        *(f"properties.refundedLineItems[].{f}" for f in _EVENT_ITEM),
        *(f"properties.product.{f}" for f in _EVENT_ITEM)),
    ("omnisend", "order"): ("orderSum", "subTotalSum", "discountSum", "taxSum", "shippingSum",
                            *(f"products[].{f}" for f in _V3_ITEM)),
    ("omnisend", "cart"): ("cartSum", *(f"products[].{f}" for f in _V3_ITEM)),
    ("omnisend", "product"): ("variants[].price", "variants[].strikeThroughPrice"),
    ("ometria", "product"): ("price", "special_price"),
    ("omneo", "profile"): ("birth_day", "birth_month", "birth_year"),
    ("ometria", "order"): ("grand_total", "subtotal", "discount", "shipping", "tax",
                           *(f"lineitems[].{f}" for f in ("quantity", "unit_price", "subtotal", "total", "tax",
                                                          "discount", "quantity_refunded", "refunded"))),
}
# Of those, the money fields the destination takes in integer cents (apis.md 1.4, 1.5); its other
# money fields are decimal major units. Counts are whole numbers.
CENTS_FIELDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("omnisend", "order"): ("orderSum", "subTotalSum", "discountSum", "taxSum", "shippingSum",
                            "products[].price", "products[].discount"),
    ("omnisend", "cart"): ("cartSum", "products[].price", "products[].discount"),
}
WHOLE_NUMBER_FIELDS = ("quantity", "productQuantity", "orderNumber", "quantity_refunded", "birth_day", "birth_month",
                       "birth_year")  # the last step of the path
OMETRIA_EVENT_TYPE_MAX = 32  # Ometria keeps the first 32 characters of a custom event's event_type (apis.md 2.5)
# The recommended Omnisend events and their eventVersion (apis.md 1.2). Only these have a fixed
# shape (NUMBER_FIELDS); a custom event's properties are its own, of any type.
OMNISEND_RECOMMENDED_EVENTS: dict[str, str] = {
    "added product to cart": "", "started checkout": "", "placed order": "v2", "paid for order": "v2",
    "order fulfilled": "v2", "order canceled": "v2", "order refunded": "v2", "ordered product": "v2",
    "viewed product": "v4",
}
BOOLEAN_FIELDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("omnisend", "event"): ("properties.subTotalTaxIncluded",),
    ("omnisend", "order"): ("subTotalTaxIncluded",),
    ("ometria", "order"): ("is_valid", "lineitems[].is_on_sale"),
    ("ometria", "product"): ("is_active",),
    ("omneo", "profile"): tuple(f"comms_attributes.{flag}" for flag in ("email_promo", "sms_promo", "email_bounced",
                                                                         "email_benefits")),
}

OMNISEND_EVENT_FIELDS = ("eventName", "eventID", "eventTime", "eventVersion", "origin", "contact", "properties")
OMNISEND_ORDER_FIELDS = (
    "orderID", "email", "phone", "contactID", "orderNumber", "cartID", "shippingMethod", "trackingCode",
    "courierTitle", "courierUrl", "orderUrl", "source", "tags", "discountCode", "discountValue", "discountType",
    "currency", "orderSum", "subTotalSum", "subTotalTaxIncluded", "discountSum", "taxSum", "shippingSum",
    "createdAt", "updatedAt", "canceledDate", "cancelReason", "paymentMethod", "paymentStatus",
    "fulfillmentStatus", "contactNote", "billingAddress", "shippingAddress", "products",
)
OMNISEND_CART_FIELDS = (
    "cartID", "email", "phone", "contactID", "createdAt", "updatedAt", "currency", "cartSum",
    "cartRecoveryUrl", "products",
)
OMNISEND_CONTACT_FIELDS = (
    "identifiers", "firstName", "lastName", "tags", "country", "countryCode", "state", "city", "address",
    "postalCode", "gender", "birthdate", "customProperties", "sendWelcomeEmail", "createdAt",
)
# Omnisend's 2026 products and product categories (Omnisend's OpenAPI 2026-03-15, `Product`, `Variant`,
# `CreateCategoryRequest`): required `id, title, url, currency, status` / variants `id, title, url, price`.
OMNISEND_PRODUCT_FIELDS = (
    "id", "title", "url", "currency", "status", "description", "vendor", "type", "tags", "categoryIDs",
    "defaultImageUrl", "images", "variants", "createdAt", "updatedAt",
)
OMNISEND_PRODUCT_STATUSES = ("inStock", "outOfStock", "notAvailable")
OMETRIA_PRODUCT_FIELDS = (
    "id", "@merge", "title", "url", "image_url", "price", "special_price", "currency", "sku", "is_active",
    "is_variant", "parent_id", "attributes", "stores", "properties",
)
OMETRIA_ORDER_FIELDS = (
    "id", "@merge", "timestamp", "grand_total", "subtotal", "discount", "shipping", "tax", "currency", "status",
    "is_valid", "customer", "web_id", "ip_address", "channel", "store", "payment_method", "shipping_method",
    "coupon_code", "shipping_address", "billing_address", "properties", "lineitems",
)
OMETRIA_CONTACT_FIELDS = (
    "id", "@collection", "@merge", "@force_optin", "@add_to_lists", "@remove_from_lists", "email", "customer_id",
    "marketing_optin", "timestamp_acquired", "timestamp_subscribed", "timestamp_unsubscribed", "firstname",
    "lastname", "middlename", "prefix", "phone_number", "date_of_birth", "gender", "country_id", "timezone",
    "store_ids", "channels", "properties",
)
# Omneo profiles written through `POST /v3/profiles/batch` (apis.md 3.7). Two fields are the bridge's, not
# Omneo's, and are taken out of the profile before it is sent: `match_criteria` (the batch's; `email`
# unless the rule names an identity handle) and `phone_exists` (`secondary_phone`: a 422 "The phone number
# exists" is tried once more with the number as `secondary_phone`).
OMNEO_CONTROL_FIELDS = ("match_criteria", "phone_exists")
OMNEO_PROFILE_FIELDS = (
    "first_name", "last_name", "email", "mobile_phone", "secondary_phone", "gender", "birth_day", "birth_month",
    "birth_year", "title", "company", "currency", "joined_at", "tags", "identities", "custom_attributes", "address",
    "addresses", "comms_attributes", *OMNEO_CONTROL_FIELDS,
)
OMNEO_GENDERS = ("male", "female", "withheld", "other")
OMNEO_PHONE_EXISTS = ("secondary_phone", "dead")
# Omneo computes or owns these: a profile that carries one is refused before sending (apis.md 3.7).
OMNEO_READ_ONLY = ("id", "external_id", "full_name", "birth_date", "reward_balance", "point_balance",
                   "point_balance_dollars", "combined_balance_dollars", "tier")
OMNEO_MAX_PROFILES = 500  # profiles per batch request (apis.md 3.7)

OMETRIA_EVENT_FIELDS = (
    "id", "timestamp", "event_type", "identity_email", "identity_account_id", "profile_id", "properties",
)

KINDS: dict[tuple[str, str], KindSpec] = {
    (spec.destination, spec.kind): spec
    for spec in (
        KindSpec("omnisend", "event", "events", ("eventName", "origin"),
                 any_of=(("contact.email", "contact.phone", "contact.id"),),
                 fields=OMNISEND_EVENT_FIELDS, actions=("create",),
                 key_fields=("properties.orderID", "properties.cartID", "contact.email")),
        # upsert: v3 POST /v3/contacts, every identifier with its channel status (consent);
        # update: the 2026 line's update by email, the contact's details without any status (apis.md 1.6).
        KindSpec("omnisend", "contact", "contacts", ("identifiers",), fields=OMNISEND_CONTACT_FIELDS,
                 actions=("upsert", "update"), key_fields=("identifiers.0.id",)),
        KindSpec("omnisend", "order", "orders", ("orderID", "currency", "orderSum", "createdAt"),
                 any_of=(("email", "phone", "contactID"),), fields=OMNISEND_ORDER_FIELDS,
                 actions=("create", "replace", "update"), key_fields=("orderID",), partial_actions=("update",)),
        # upsert: PATCH the cart, on 404 create it (a checkout's updates keep it in step); delete: the cart
        # is closed (its order was placed), needing only `cartID`.
        KindSpec("omnisend", "cart", "carts", ("cartID", "currency", "cartSum"),
                 any_of=(("email", "contactID"),), fields=OMNISEND_CART_FIELDS,
                 actions=("create", "replace", "update", "upsert", "delete"), key_fields=("cartID",),
                 partial_actions=("delete",)),
        KindSpec("ometria", "order", "orders", ("id", "timestamp", "grand_total", "currency"),
                 fields=OMETRIA_ORDER_FIELDS, key_fields=("id",)),
        KindSpec("ometria", "contact", "contacts", ("id",), any_of=(("email", "customer_id"),),
                 fields=OMETRIA_CONTACT_FIELDS, key_fields=("id",)),
        KindSpec("ometria", "custom_event", "events", ("event_type", "timestamp"),
                 any_of=(("identity_email", "identity_account_id"),), fields=OMETRIA_EVENT_FIELDS,
                 key_fields=("identity_account_id", "identity_email")),
        KindSpec("omnisend", "product", "products", ("id", "title", "url", "currency", "status"),
                 fields=OMNISEND_PRODUCT_FIELDS, key_fields=("id",)),
        KindSpec("omnisend", "category", "products", ("categoryID", "title"), fields=("categoryID", "title"),
                 key_fields=("categoryID",)),
        # GDPR anonymisation of one person, by email (Ometria's data anonymisation API): erases, so deletions.
        KindSpec("ometria", "erasure", "deletions", ("email",), fields=("email", "comment"), actions=("create",),
                 key_fields=("email",)),
        KindSpec("ometria", "product", "products", ("id", "title"), fields=OMETRIA_PRODUCT_FIELDS, key_fields=("id",)),
        # Omneo's batch profiles: upserted by `match_criteria` (email, or an identity handle).
        KindSpec("omneo", "profile", "contacts", ("email",), fields=OMNEO_PROFILE_FIELDS, key_fields=("email",)),
    )
}
