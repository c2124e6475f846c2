"""Keyset page tokens of ListProducts under every order, while other calls write: every
product nobody touched meanwhile is seen exactly once and in its place, whatever was
created, re-priced or archived between (or during) the pages. A token is refused with
another query, filter or order."""

from __future__ import annotations

import asyncio
import random

import grpc
import pytest
from commerce.catalog.v1 import catalog_pb2 as pb
from commerce.common.v1 import money_pb2
from google.protobuf import field_mask_pb2

from tests.catalog.conftest import Shop, product
from tests.errors import violated_fields

ORDERS = [("", ""), ("", "price"), ("", "price desc"), ("", "create_time desc"), ("", "title"),
          ("", "title desc"), ("pebble", ""), ("pebble", "relevance desc"), ("pebble", "price desc")]


async def _create(shop: Shop, sku: str, title: str, price: int, description: str = "") -> pb.Product:
    reply = await shop.stub.CreateProduct(pb.CreateProductRequest(product=product(
        sku, title=title, price=price, description=description)), metadata=shop.seller)
    made: pb.Product = reply.product
    return made


def _key(p: pb.Product, order_by: str, query: str) -> tuple[object, ...]:
    """Where a product belongs in the order (for products nobody changed while paging)."""
    name = order_by.split()[0] if order_by else ("relevance" if query else "id")
    desc = order_by.endswith("desc")
    if name == "relevance":  # rank 1 (the title matches) first, newest first within; desc: all reversed
        rank = 1 if query in p.title.lower() else 2
        return (_Desc(rank), p.product_id) if desc else (rank, _Desc(p.product_id))
    key: tuple[object, ...] = {
        "price": (p.price.amount_minor, p.product_id), "title": (p.title.lower(), p.product_id),
        "create_time": (p.create_time.ToDatetime(), p.product_id), "id": (p.product_id,)}[name]
    return tuple(_Desc(k) for k in key) if desc else key


class _Desc:
    """A value that sorts the other way round."""

    def __init__(self, value: object) -> None:
        self.value = value

    def __lt__(self, other: _Desc) -> bool:
        return bool(self.value > other.value)  # type: ignore[operator]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Desc) and bool(self.value == other.value)

    __hash__ = None  # type: ignore[assignment]


@pytest.mark.parametrize(("query", "order_by"), ORDERS, ids=[f"{q or '-'}/{o or 'default'}" for q, o in ORDERS])
async def test_pages_see_every_untouched_product_once_in_place_while_others_write(
        shop: Shop, query: str, order_by: str) -> None:
    rng = random.Random(f"{query}{order_by}")
    stable: dict[str, pb.Product] = {}
    volatile: list[str] = []
    for n in range(30):
        in_title = n % 3 != 0
        made = await _create(shop, f"P-{n:02d}", f"{'Pebble' if in_title else 'Stone'} {rng.choice('abcXYZ')}{n}",
                             rng.choice([100, 200, 300, 400]), description="" if in_title else "a pebble inside")
        if n % 5 == 0:
            volatile.append(made.product_id)
        else:
            stable[made.product_id] = made
    done = asyncio.Event()
    writes = 0

    async def writer() -> None:
        nonlocal writes
        n = 0
        while not done.is_set():
            n += 1
            writes = n
            await _create(shop, f"NEW-{n:03d}", f"Pebble new {n}", rng.choice([50, 250, 999]))
            moved = rng.choice(volatile)
            await shop.stub.UpdateProduct(pb.UpdateProductRequest(
                product=pb.Product(product_id=moved, title=f"Pebble moved {n}",
                                   price=money_pb2.Money(currency_code="USD", amount_minor=rng.choice([1, 250, 9999]))),
                update_mask=field_mask_pb2.FieldMask(paths=["title", "price"])), metadata=shop.seller)
            if n % 4 == 0:
                await shop.stub.ArchiveProduct(pb.ArchiveProductRequest(product_id=rng.choice(volatile)),
                                               metadata=shop.seller)
            await asyncio.sleep(0)

    writing = asyncio.create_task(writer())
    seen: list[str] = []
    token = ""
    try:
        for _ in range(200):
            reply = await shop.stub.ListProducts(pb.ListProductsRequest(query=query, order_by=order_by, page_size=3,
                                                                        page_token=token), metadata=shop.customer)
            seen += [p.product_id for p in reply.products]
            token = reply.next_page_token
            if not token:
                break
            await asyncio.sleep(0.002)
    finally:
        done.set()
        await writing
    assert not token, "paging did not end"
    assert writes >= 3, "the writes did not overlap the paging"
    wanted = [pid for pid, p in stable.items() if not query or query in (p.title + p.description).lower()]
    assert sorted(pid for pid in seen if pid in stable) == sorted(wanted), "each untouched product exactly once"
    duplicates = {pid for pid in seen if seen.count(pid) > 1}
    assert duplicates <= set(volatile), "only a product moved across the cursor may show twice"
    in_order = [pid for pid in seen if pid in stable]
    assert in_order == sorted(in_order, key=lambda pid: _key(stable[pid], order_by, query)), "in its place"


async def test_a_token_is_refused_with_another_query_filter_or_order_and_kept_across_page_sizes(shop: Shop) -> None:
    for n in range(4):
        await _create(shop, f"T-{n}", f"Token pebble {n}", 100 * n)
    first = pb.ListProductsRequest(query="pebble", filter="price >= 0", order_by="price", page_size=1)
    token = (await shop.stub.ListProducts(first, metadata=shop.customer)).next_page_token
    for changed in ({"query": "token"}, {"filter": "price >= 1"}, {"order_by": "price desc"},
                    {"order_by": "title"}, {"category": "shoes"}):
        request = pb.ListProductsRequest(**{"query": "pebble", "filter": "price >= 0", "order_by": "price",
                                            **changed, "page_token": token})
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await shop.stub.ListProducts(request, metadata=shop.customer)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert violated_fields(caught.value) == ["page_token"], changed
    same = pb.ListProductsRequest(query="pebble", filter="price>=0", order_by="price asc", page_size=10,
                                  page_token=token, facets=["category"])
    rest = await shop.stub.ListProducts(same, metadata=shop.customer)
    assert len(rest.products) == 3  # spacing, "asc", page_size and facets may change
    with pytest.raises(grpc.aio.AioRpcError) as caught:  # a seller's token is no shopper's: other statuses
        await shop.stub.ListProducts(pb.ListProductsRequest(query="pebble", filter="price >= 0", order_by="price",
                                                            page_token=token), metadata=shop.seller)
    assert violated_fields(caught.value) == ["page_token"]


async def test_a_page_token_after_the_longest_title_of_emoji_is_accepted(shop: Shop) -> None:
    """The token holds the title sorted on; JSON writes each emoji as 12 bytes."""
    titles = ["\U0001F600" * 200, "\U0001F601" * 200]
    for n, title in enumerate(titles):
        await shop.stub.CreateProduct(pb.CreateProductRequest(product=product(f"EMO-{n}", title=title)),
                                      metadata=shop.seller)
    first = await shop.stub.ListProducts(pb.ListProductsRequest(order_by="title", page_size=1), metadata=shop.customer)
    assert first.next_page_token
    second = await shop.stub.ListProducts(pb.ListProductsRequest(order_by="title", page_size=1,
                                                                 page_token=first.next_page_token),
                                          metadata=shop.customer)
    assert [p.title for p in (*first.products, *second.products)] == titles
