"""The topics each built-in provider sends (apis.md 3.1, 4.4, 5): for the rule check's "did you mean".

Shopify and Omneo add topics over time, so a topic missing here is only a note; WooCommerce's are
a closed set (`<resource>.<event>`, or `action.<hook>`), so a topic outside it can never arrive.
"""

from __future__ import annotations

import re

SHOPIFY = frozenset({
    "app/uninstalled", "carts/create", "carts/update", "checkouts/create", "checkouts/delete", "checkouts/update",
    "collections/create", "collections/delete", "collections/update", "customers/create", "customers/delete",
    "customers/disable", "customers/enable", "customers/update", "customers/data_request", "customers/redact",
    "customers_email_marketing_consent/update", "customers_marketing_consent/update", "draft_orders/create",
    "draft_orders/delete", "draft_orders/update", "fulfillments/create", "fulfillments/update",
    "inventory_levels/update", "order_transactions/create", "orders/cancelled", "orders/create", "orders/delete",
    "orders/edited", "orders/fulfilled", "orders/paid", "orders/partially_fulfilled", "orders/updated",
    "products/create", "products/delete", "products/update", "refunds/create", "shop/redact", "shop/update",
})
OMNEO = frozenset({
    "profile.created", "profile-temporary.created", "profile.updated", "profile.merged", "profile.before.update",
    "profile.deleted", "profile.address.created", "profile.address.updated", "profile.address.deleted",
    "transaction.created", "transaction.updated", "transaction.deleted", "transaction.received",
    "transaction.resent", "transaction.sync", "transaction.points.issued", "transaction.tier-points.issued",
    "transaction-item.created", "transaction-item.resent", "reward.created", "reward.updated", "reward.deleted",
    "benefit.created", "benefit.updated", "benefit.deleted", "benefit.code.allocated", "point.created",
    "point.updated", "point.deleted", "tier.achieved", "tier.lost", "tier.maintained", "tier.progressed",
    "achievement.progressed", "achievement.unlocked", "achievement.lost", "balance.updated",
    "aggregation.updated", "order.created", "order.updated", "identity.created", "interaction.created",
    "rating.created", "rating.updated",
})
WOOCOMMERCE = frozenset(f"{resource}.{event}" for resource in ("coupon", "customer", "order", "product")
                        for event in ("created", "updated", "deleted", "restored"))
_WOO_ACTION = re.compile(r"action\.\S+")

KNOWN = {"shopify": SHOPIFY, "omneo": OMNEO, "woocommerce": WOOCOMMERCE}


def closed(source: str) -> bool:
    """Whether every topic the provider can send is listed (a topic outside can never arrive)."""
    return source == "woocommerce"


def known(source: str, topic: str) -> bool:
    """Whether `topic` is one that built-in `source` sends."""
    if source == "woocommerce" and _WOO_ACTION.fullmatch(topic):
        return True
    return topic in KNOWN[source]
