"""The AIP-160 filter of ListProducts: what it accepts, how it refuses, and that what it
finds in the real PostgreSQL is what the grammar means.

The meaning is spelled out here once more, in Python (``meaning``: SQL's three-valued
logic included, so that NOT of an attribute a product lacks is still not a match), and
hypothesis draws filters from the grammar and compares: the products the service
returns are exactly those the filter means. Arbitrary text is OK or INVALID_ARGUMENT on
``filter``, never INTERNAL."""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

import grpc
import pytest
from commerce.catalog.v1 import catalog_pb2 as pb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.catalog.domain import filtering
from services.catalog.domain.filtering import AllOf, AnyOf, Compare, Expr, HasKey, Not
from services.catalog.domain.product import ProductStatus
from services.runtime.errors import InvalidArgument
from tests.catalog.conftest import Shop, new_shop, product
from tests.errors import error_details

EXAMPLES = 60
KEYS = ["color", "size", "weight", "screen size", "ünï", "a-b", "x'y", 'q"uote', "missing"]
VALUES = ["red", "blue", "M", "L", "10", "2.5", "-3", "100", "", "O'Brien", "ünï", "a b"]
CATEGORIES = ["shoes", "hats", "Ünïcode", "O'Brien", "a b"]
PRICES = [0, 1, 999, 1000, 5000, 10**12]


# --- what a filter means, in Python -------------------------------------------------------

@dataclass(frozen=True)
class Item:
    product_id: str
    category: str
    sku: str
    price: int
    currency: str
    status: ProductStatus
    create_time: datetime
    attributes: dict[str, str]


def _number(text: str) -> Decimal | None:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        return None
    return value if value.is_finite() and text.strip() and "_" not in text else None


_ORDER: dict[str, Callable[[object, object], bool]] = {
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,  # type: ignore[operator]
    ">=": lambda a, b: a >= b, "=": lambda a, b: a == b, "!=": lambda a, b: a != b}  # type: ignore[operator]


def meaning(expr: Expr, item: Item) -> bool | None:
    """True, False, or None (SQL's unknown) for one product."""
    if isinstance(expr, AllOf):
        found = [meaning(o, item) for o in expr.operands]
        return False if False in found else (None if None in found else True)
    if isinstance(expr, AnyOf):
        found = [meaning(o, item) for o in expr.operands]
        return True if True in found else (None if None in found else False)
    if isinstance(expr, Not):
        inner = meaning(expr.operand, item)
        return None if inner is None else not inner
    if isinstance(expr, HasKey):
        return expr.key in item.attributes
    return _compare(expr, item)


def _compare(c: Compare, item: Item) -> bool | None:
    name, value = c.member.name, c.value
    if name != "attribute":
        actual = {"category": item.category, "sku": item.sku, "price": item.price, "currency": item.currency,
                  "status": item.status, "create_time": item.create_time}[name]
        if isinstance(actual, str):  # PostgreSQL compares text by bytes here (collation C)
            return _ORDER[c.op](actual.encode(), str(value).encode())
        return _ORDER[c.op](actual, value)
    key = c.member.key
    if value is None:
        return key in item.attributes
    if c.op in ("=", ":"):
        return item.attributes.get(key) == value
    if c.op == "!=":
        return item.attributes.get(key) != value
    if key not in item.attributes:
        return None
    if isinstance(value, Decimal):
        number = _number(item.attributes[key])
        return None if number is None else _ORDER[c.op](number, value)
    return _ORDER[c.op](item.attributes[key].encode(), str(value).encode())


# --- filters drawn from the grammar, written in any of its spellings -----------------------

def _quoted(text: str, draw: st.DrawFn) -> str:
    quote = draw(st.sampled_from(['"', "'"]))
    return quote + text.replace("\\", "\\\\").replace(quote, "\\" + quote) + quote


def _word(text: str) -> bool:
    return bool(text) and all(c in string.ascii_letters + string.digits + "_.-" for c in text) \
        and not text.startswith("-") and text not in ("AND", "OR", "NOT")


@st.composite
def restriction(draw: st.DrawFn, times: list[datetime]) -> str:
    kind = draw(st.sampled_from(["category", "sku", "price", "currency", "status", "create_time", "attr", "attr",
                                 "has", "present"]))
    op = draw(st.sampled_from(["=", "!=", "<", "<=", ">", ">="]))
    if kind == "category":
        value = draw(st.sampled_from(CATEGORIES))
        return f"category {op} {value if _word(value) and draw(st.booleans()) else _quoted(value, draw)}"
    if kind == "sku":
        return f"sku {op} {_quoted(draw(st.sampled_from(['SKU-00', 'SKU-05', 'ZZZ'])), draw)}"
    if kind == "price":
        name = draw(st.sampled_from(["price", "price.amount_minor"]))
        return f"{name} {op} {draw(st.sampled_from([*PRICES, 2, 4999, -1]))}"
    if kind == "currency":
        return f"price.currency_code {op} {draw(st.sampled_from(['USD', 'EUR']))}"
    if kind == "status":
        status = draw(st.sampled_from(["ACTIVE", "DRAFT", "ARCHIVED", "PRODUCT_STATUS_ACTIVE"]))
        return f"status {draw(st.sampled_from(['=', '!=']))} {status}"
    if kind == "create_time":
        moment = draw(st.sampled_from([datetime(2000, 1, 1, tzinfo=UTC), datetime(2999, 1, 1, tzinfo=UTC), *times]))
        return f"create_time {op} {_quoted(moment.isoformat().replace('+00:00', 'Z'), draw)}"
    key = draw(st.sampled_from(KEYS))
    member = f"attributes.{key}" if _word(key) and draw(st.booleans()) else f"attributes.{_quoted(key, draw)}"
    if kind == "has":
        return f"attributes:{key if _word(key) else _quoted(key, draw)}"
    if kind == "present":
        return f"{member}:*"
    value = draw(st.sampled_from(VALUES))
    if draw(st.booleans()) and value and _word(value):
        return f"{member} {draw(st.sampled_from([op, ':']))} {value}"
    return f"{member} {op} {_quoted(value, draw)}"


def filters(times: list[datetime]) -> st.SearchStrategy[str]:
    space = st.sampled_from([" ", "  ", "\t", " \n "])

    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.tuples(inner, st.sampled_from([" AND ", " OR ", " "]), inner).map(lambda t: t[0] + t[1] + t[2]),
            st.tuples(st.sampled_from(["NOT ", "-"]), inner).map(
                lambda t: t[0] + (t[1] if t[0] == "NOT " else f"({t[1]})")),
            st.tuples(space, inner, space).map(lambda t: f"({t[0]}{t[1]}{t[2]})"),
        )

    return st.recursive(restriction(times), extend, max_leaves=6)


# --- against the service ---------------------------------------------------------------------

@pytest.fixture(scope="module")
async def world(channel: grpc.aio.Channel, keys: object) -> tuple[Shop, list[Item]]:
    shop = await new_shop(channel, keys)  # type: ignore[arg-type]
    items = []
    statuses = [pb.PRODUCT_STATUS_ACTIVE, pb.PRODUCT_STATUS_DRAFT, pb.PRODUCT_STATUS_ARCHIVED]
    for n in range(24):
        attributes = {KEYS[(n + k) % (len(KEYS) - 1)]: VALUES[(n * 7 + k * 3) % len(VALUES)]
                      for k in range(n % 4)}
        made = (await shop.stub.CreateProduct(pb.CreateProductRequest(product=product(
            f"SKU-{n:02d}", category=CATEGORIES[n % len(CATEGORIES)], price=PRICES[n % len(PRICES)],
            currency="EUR" if n % 5 == 0 else "USD", status=statuses[n % 3], attributes=attributes)),
            metadata=shop.seller)).product
        items.append(Item(made.product_id, made.category, made.sku, made.price.amount_minor,
                          made.price.currency_code, ProductStatus(pb.ProductStatus.Name(made.status)[15:]),
                          made.create_time.ToDatetime(tzinfo=UTC), dict(made.attributes)))
    return shop, items


async def _listed(shop: Shop, filter_: str) -> set[str]:
    found: set[str] = set()
    token = ""
    while True:
        reply = await shop.stub.ListProducts(pb.ListProductsRequest(filter=filter_, page_size=100, page_token=token),
                                             metadata=shop.seller)
        found |= {p.product_id for p in reply.products}
        token = reply.next_page_token
        if not token:
            return found


async def _check_meaning(world: tuple[Shop, list[Item]], text: str) -> bool:
    """Asserts the service finds what ``text`` means; whether that is anything."""
    shop, items = world
    expr = filtering.parse(text)
    assert expr is not None
    assert filtering.parse(filtering.canonical(expr)) == expr, "the canonical spelling means the same"
    expected = {i.product_id for i in items if meaning(expr, i) is True}
    assert await _listed(shop, text) == expected, f"{text!r} read as {expr}"
    return bool(expected)


async def test_drawn_filters_find_exactly_the_products_they_mean(world: tuple[Shop, list[Item]]) -> None:
    times = [i.create_time for i in world[1]]
    drawn: list[str] = []

    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck),
              derandomize=True)
    @given(text=filters(times[::6]))
    def collect(text: str) -> None:
        drawn.append(text)

    collect()
    nonempty = 0
    for text in drawn:
        nonempty += await _check_meaning(world, text)
    assert nonempty > len(drawn) // 4, "the drawn filters mostly matched nothing: the test would prove little"


@pytest.mark.parametrize("text", [
    'category = "shoes" AND price < 5000',
    "price >= 1000 price < 6000",  # side by side: AND
    "category = hats OR category = shoes AND price > 0",  # OR binds tighter than AND
    'NOT status = DRAFT AND -attributes:color',
    "attributes.size:* AND attributes.weight > 5",  # a number: "10" and "100" match, "M" does not
    'attributes.size < "N"',  # text: "M" and "L" and "10" ...
    'attributes."screen size" = red OR attributes.ünï = "ünï"',
    "(price = 0 OR price = 1) AND NOT (category = shoes)",
    "NOT attributes.color = red",  # products without a color too
    "NOT attributes.weight < 50",  # not those without a weight: unknown stays unknown
])
async def test_written_filters_find_exactly_the_products_they_mean(world: tuple[Shop, list[Item]], text: str) -> None:
    await _check_meaning(world, text)


# --- refusals ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "position", "expected"), [
    ("price >", 8, "expected a value after '>'"),
    ("price 5", 7, "expected a comparator"),
    ("colour = red", 1, "unknown field 'colour'"),
    ("shoes", 1, "free text belongs in 'query'"),
    ('"shoes"', 1, "expected a field name"),
    ("(category = x", 14, "expected ')' to close the '(' at position 1"),
    ("category = x)", 13, "unmatched ')'"),
    ("category = x AND", 17, "expected a restriction"),
    ("AND category = x", 1, "expected a restriction before AND"),
    ('category = "open', 12, 'no closing "'),
    ("price = 12.50", 9, "an integer amount in minor units"),
    ("price = cheap", 9, "an integer amount in minor units"),
    ("status > ACTIVE", 8, "= or != only"),
    ("status = SOLD", 10, "ACTIVE, DRAFT or ARCHIVED"),
    ('create_time > "yesterday"', 15, "RFC 3339"),
    ('create_time > "2026-01-01T00:00:00"', 15, "with its offset"),
    ("category:*", 9, "applies to attributes"),
    ("attributes.color = *", 20, "goes with ':'"),
    ("attributes = red", 12, "'attributes' takes ':'"),
    ("attributes. = red", 13, "expected an attribute key"),
    ("price ! 5", 7, "'!' must be followed by '='"),
    ('category = "a\\q"', 14, "a backslash in a string escapes"),
    ("()", 2, "expected a restriction inside"),
    ("- price = 5", 1, "'-' negates"),
    ("(" * 20 + "price = 1" + ")" * 20, 17, "nest at most 16 deep"),
    (" AND ".join(["price = 1"] * 51), 701, "at most 50 restrictions"),
])
async def test_a_malformed_filter_is_invalid_argument_naming_position_and_expectation(
        shop: Shop, text: str, position: int, expected: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.stub.ListProducts(pb.ListProductsRequest(filter=text), metadata=shop.seller)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    info, bad = error_details(caught.value)
    assert [v.field for v in bad.field_violations] == ["filter"]
    description = bad.field_violations[0].description
    assert description.startswith(f"at position {position}: ") and expected in description, description
    assert info.reason == "INVALID_FILTER" and info.metadata["position"] == str(position)


@pytest.mark.parametrize("text", ["x" * 2001, "price = 1\x00", "category = \x07"])
async def test_an_overlong_or_control_character_filter_is_refused(shop: Shop, text: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.stub.ListProducts(pb.ListProductsRequest(filter=text), metadata=shop.seller)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in error_details(caught.value)[1].field_violations] == ["filter"]


_SOUP = st.lists(st.sampled_from([
    "category", "price", "status", "create_time", "attributes", "attributes.color", "attributes.", "sku", "AND",
    "OR", "NOT", "-", "(", ")", "=", "!=", "<", "<=", ">", ">=", ":", "*", '"', "'", "\\", "red", "5", "-3", "1.5",
    '"2026-01-01T00:00:00Z"', "ACTIVE", " ", "  ", ".", ",", "\u00e9", "\U0001f600", "'; DROP TABLE products; --",
    "$1", "%", "_"]), max_size=14).map("".join)


@settings(max_examples=400, deadline=None, database=None, derandomize=True)
@given(text=st.one_of(_SOUP, st.text(max_size=60)))
def test_any_text_parses_or_is_refused_naming_a_position_within_it(text: str) -> None:
    try:
        expr = filtering.parse(text)
    except InvalidArgument as error:
        assert [v.field for v in error.violations] == ["filter"]
        if error.reason == "INVALID_FILTER":
            assert 1 <= int(error.metadata["position"]) <= len(text) + 1
        return
    if expr is not None:
        assert filtering.parse(filtering.canonical(expr)) == expr


async def test_arbitrary_filters_through_the_service_are_ok_or_invalid_argument_never_internal(shop: Shop) -> None:
    await shop.create("SOUP-1", title="Soup")
    drawn: list[str] = []

    @settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck),
              derandomize=True)
    @given(text=_SOUP)
    def collect(text: str) -> None:
        drawn.append(text)

    collect()
    codes = set()
    for text in drawn:
        try:
            await shop.stub.ListProducts(pb.ListProductsRequest(filter=text, order_by="price desc",
                                                                facets=["category", "attributes.color"]),
                                         metadata=shop.customer)
            codes.add(grpc.StatusCode.OK)
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, f"{text!r}: {error.code()} {error.details()}"
            assert [v.field for v in error_details(error)[1].field_violations] == ["filter"], text
            codes.add(error.code())
    assert codes == {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT}, "both kinds were drawn"
