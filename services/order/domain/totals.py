"""Shipping and tax from a tenant's rules.

Shipping: FLAT charges ``base_minor`` per order; WEIGHT charges ``base_minor`` plus
``per_kg_minor`` for every started kilogram of the order's weight (each unit's weight
as the cart's line gives it, from the product attribute "weight_grams"; a product
without it weighs nothing). An
order whose subtotal reaches ``free_threshold_minor`` (when > 0) ships free.
Tax: ``rate_bps`` basis points (1/100 of a percent) of subtotal + shipping,
rounded half up to the minor unit once per order. The rate is the one of the
shipping address's (country, region), else of its country, else 0.
Without any rule row: shipping is free and tax is zero.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from services.order.domain.order import OrderLine, Totals

FLAT, WEIGHT = "FLAT", "WEIGHT"


@dataclass(frozen=True)
class ShippingRule:
    mode: str = FLAT
    base_minor: int = 0
    per_kg_minor: int = 0
    free_threshold_minor: int = 0


@dataclass(frozen=True)
class TaxRate:
    country_code: str
    region: str  # "" for the whole country
    rate_bps: int


@dataclass(frozen=True)
class Rules:
    shipping: ShippingRule = ShippingRule()
    tax_rates: tuple[TaxRate, ...] = ()

    def tax_bps(self, country_code: str, region: str) -> int:
        by_key = {(t.country_code, t.region.upper()): t.rate_bps for t in self.tax_rates}
        exact = by_key.get((country_code, region.upper())) if region else None
        return exact if exact is not None else by_key.get((country_code, ""), 0)


def shipping_minor(rule: ShippingRule, subtotal_minor: int, total_grams: int) -> int:
    if rule.free_threshold_minor > 0 and subtotal_minor >= rule.free_threshold_minor:
        return 0
    if rule.mode == WEIGHT:
        kilograms = -(-total_grams // 1000)  # every started kilogram
        return rule.base_minor + rule.per_kg_minor * kilograms
    return rule.base_minor


def round_bps(amount_minor: int, bps: int) -> int:
    """amount x bps / 10000, rounded half up (amounts are never negative)."""
    return (amount_minor * bps + 5000) // 10000


def totals(currency_code: str, lines: Sequence[OrderLine], grams: Mapping[str, int], rules: Rules,
           country_code: str, region: str) -> Totals:
    subtotal = sum(line.line_total_minor for line in lines)
    total_grams = sum(grams.get(line.product_id, 0) * line.quantity for line in lines)
    shipping = shipping_minor(rules.shipping, subtotal, total_grams)
    tax = round_bps(subtotal + shipping, rules.tax_bps(country_code, region))
    return Totals(currency_code, subtotal, shipping, tax)
