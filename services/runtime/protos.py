"""Helpers for generated messages that every servicer's convert.py shares: money, and
the names of a Protobuf enum's values without their prefix."""

from __future__ import annotations

from typing import Any

from commerce.common.v1 import money_pb2


def money_pb(currency_code: str, amount_minor: int) -> money_pb2.Money:
    return money_pb2.Money(currency_code=currency_code, amount_minor=amount_minor)


class EnumNames:
    """``EnumNames(pb.ProductStatus, "PRODUCT_STATUS_")``: "ACTIVE" <-> PRODUCT_STATUS_ACTIVE's number."""

    def __init__(self, enum: Any, prefix: str) -> None:
        self.numbers: dict[str, int] = {name.removeprefix(prefix): int(number) for name, number in enum.items()}
        self.names: dict[int, str] = {number: name for name, number in self.numbers.items()}

    def name(self, number: int) -> str:
        """The value's name without the prefix; an unknown number (open enums) as its digits."""
        return self.names.get(number, str(number))

    def number(self, name: str) -> Any:
        """The number of a name without the prefix (KeyError for an unknown name)."""
        return self.numbers[name]
