"""Products and categories as the fake Omnisend checks them (the 2026 `/api` line)."""

from __future__ import annotations

from typing import Any

from bridge.fakes import formats
from bridge.fakes.omnisend.errors import Problems

PRODUCT_STATUSES = ("inStock", "outOfStock", "notAvailable")
PRODUCT_TEXT_MAX = {"id": 100, "title": 255, "url": 1000, "description": 1000, "vendor": 100, "type": 100,
                    "defaultImageUrl": 1000}
VARIANT_TEXT_MAX = {"id": 100, "title": 255, "url": 1000, "sku": 255, "description": 1000, "defaultImageUrl": 1000}


def product_problems(record: Any) -> Problems:
    """`Product` of the 2026 line (`POST /api/products`, `PUT /api/products/{id}`): required `id, title, url,
    currency, status`; `status` inStock|outOfStock|notAvailable; `currency` ISO 4217; urls are URIs; text
    within its maxLength; `variants` 1..500, each `id, title, url, price` (a number); at most 100 tags and
    category ids, 300 images."""
    if not isinstance(record, dict):
        return [{"field": "", "code": "invalid_type", "message": "body must be an object"}]
    errors: Problems = []

    def wrong(name: str, code: str, message: str) -> None:
        errors.append({"field": name, "code": code, "message": message})

    def texts(item: dict[str, Any], limits: dict[str, int], required: tuple[str, ...], where: str) -> None:
        for name in required:
            if not formats.text(item.get(name)):
                wrong(f"{where}{name}", "required", f"{name} is required")
        for name, limit in limits.items():
            value = item.get(name)
            if value is not None and (not isinstance(value, str) or len(value) > limit):
                wrong(f"{where}{name}", "invalid_length", f"{name} must be text of at most {limit} characters")
        for name in ("url", "defaultImageUrl"):
            if formats.text(item.get(name)) and not formats.uri(item[name]):
                wrong(f"{where}{name}", "invalid_format", f"{name} must be a URL")

    texts(record, PRODUCT_TEXT_MAX, ("id", "title", "url", "currency", "status"), "")
    if formats.text(record.get("currency")) and not formats.iso4217(record["currency"]):
        wrong("currency", "invalid_format", "currency must be an ISO 4217 code")
    if formats.text(record.get("status")) and record["status"] not in PRODUCT_STATUSES:
        wrong("status", "invalid_value", "status must be one of " + ", ".join(PRODUCT_STATUSES))
    for name, limit in (("tags", 100), ("categoryIDs", 100), ("images", 300)):
        value = record.get(name)
        if value is not None and (not isinstance(value, list) or len(value) > limit
                                  or not all(isinstance(v, str) for v in value)):
            wrong(name, "invalid_type", f"{name} must be at most {limit} strings")
    variants = record.get("variants")
    if variants is not None and (not isinstance(variants, list) or not 1 <= len(variants) <= 500):
        wrong("variants", "invalid_length", "variants must hold 1 to 500 entries")
    for i, variant in enumerate(variants if isinstance(variants, list) else []):
        if not isinstance(variant, dict):
            wrong(f"variants.{i}", "invalid_type", "must be an object")
            continue
        texts(variant, VARIANT_TEXT_MAX, ("id", "title", "url"), f"variants.{i}.")
        for name in ("price", "strikeThroughPrice"):
            if (name == "price" or variant.get(name) is not None) and not formats.number(variant.get(name)):
                wrong(f"variants.{i}.{name}", "invalid_type", f"{name} must be a number")
        if variant.get("status") not in (None, *PRODUCT_STATUSES):
            wrong(f"variants.{i}.status", "invalid_value", "status must be one of " + ", ".join(PRODUCT_STATUSES))
    return errors


def category_problems(record: Any, *, creating: bool) -> Problems:
    """`CreateCategoryRequest` / `UpdateCategoryRequest`: `categoryID` 1..100 characters (creation), `title`
    at most 255, both required."""
    if not isinstance(record, dict):
        return [{"field": "", "code": "invalid_type", "message": "body must be an object"}]
    errors: Problems = []
    for name, limit in ((("categoryID", 100),) if creating else ()) + (("title", 255),):
        value = record.get(name)
        if not isinstance(value, str) or not value.strip() or len(value) > limit:
            errors.append({"field": name, "code": "required", "message": f"{name} is required, 1 to {limit} characters"})
    return errors


# --- the app -----------------------------------------------------------------------------------------
