"""ListProducts with the deprecated fields (category, min/max price, status) and a query:
pages that together hold every match exactly once. The filter grammar, orders, facets and
search are in test_filter_grammar.py, test_search*.py."""

from __future__ import annotations

import base64
import json

import grpc
import pytest
from commerce.catalog.v1 import catalog_pb2 as pb

from tests.catalog.conftest import Shop
from tests.errors import violated_fields


async def _all_pages(shop: Shop, request: pb.ListProductsRequest) -> tuple[list[str], int]:
    seen: list[str] = []
    pages = 0
    while True:
        reply = await shop.stub.ListProducts(request, metadata=shop.customer)
        pages += 1
        assert len(reply.products) <= request.page_size
        seen += [p.product_id for p in reply.products]
        if not reply.next_page_token:
            return seen, pages
        request.page_token = reply.next_page_token
        assert pages < 50, "pagination does not end"


async def test_pages_of_two_with_category_price_and_text_filters_see_every_match_once(shop: Shop) -> None:
    matches = []
    for i in range(7):
        matches.append((await shop.create(f"RUN-{i}", title=f"Runner {i}", category="shoes",
                                          price=2000 + 500 * i)).product_id)
    await shop.create("RUN-CHEAP", title="Runner cheap", category="shoes", price=1999)
    await shop.create("RUN-DEAR", title="Runner dear", category="shoes", price=5001)
    await shop.create("HAT-1", title="Runner hat", category="hats", price=3000)
    await shop.create("SHOE-X", title="Walking shoe", category="shoes", price=3000)
    await shop.create("RUN-DRAFT", title="Runner draft", category="shoes", price=3000, status=pb.PRODUCT_STATUS_DRAFT)

    seen, pages = await _all_pages(shop, pb.ListProductsRequest(
        page_size=2, category="shoes", min_price_minor=2000, max_price_minor=5000, query="runner"))

    assert sorted(seen) == sorted(matches) and len(seen) == len(set(seen)) == 7
    assert seen == sorted(seen, reverse=True), "relevance: title matches, newest first"
    assert pages == 4


async def test_last_full_page_has_no_next_token(shop: Shop) -> None:
    for _ in range(4):
        await shop.create()
    seen, pages = await _all_pages(shop, pb.ListProductsRequest(page_size=2))
    assert (len(seen), pages) == (4, 2)


async def test_products_created_while_paging_after_the_cursor_are_still_seen(shop: Shop) -> None:
    first = [(await shop.create()).product_id for _ in range(3)]
    page = await shop.stub.ListProducts(pb.ListProductsRequest(page_size=2), metadata=shop.customer)
    late = (await shop.create()).product_id
    rest = await shop.stub.ListProducts(pb.ListProductsRequest(page_size=10, page_token=page.next_page_token),
                                        metadata=shop.customer)
    assert [p.product_id for p in [*page.products, *rest.products]] == [*sorted(first), late]


async def test_query_matches_sku_title_and_description_case_insensitively(shop: Shop) -> None:
    by_sku = (await shop.create("ZEBRA-1", title="Plain")).product_id
    by_title = (await shop.create(title="The zEbRa mug")).product_id
    by_description = (await shop.create(description="Stripes like a ZEBRA")).product_id
    await shop.create(title="Horse")
    reply = await shop.stub.ListProducts(pb.ListProductsRequest(query="zebra"), metadata=shop.customer)
    assert sorted(p.product_id for p in reply.products) == sorted([by_sku, by_title, by_description])


@pytest.mark.parametrize("query", ["%", "_", "\\", "%%", "_%_"])
async def test_pattern_characters_in_the_query_are_no_pattern_and_find_nothing(shop: Shop, query: str) -> None:
    await shop.create(title=f"Sale {query} off")
    await shop.create(title="Sale nothing off")
    await shop.create(title="axb")
    reply = await shop.stub.ListProducts(pb.ListProductsRequest(query=query), metadata=shop.customer)
    assert list(reply.products) == []  # no word to search for: nothing, never everything


@pytest.mark.parametrize(("query", "title"), [("50%", "Sale 50% off"), ("a_b", "Part a_b")])
async def test_words_next_to_pattern_characters_are_found(shop: Shop, query: str, title: str) -> None:
    literal = (await shop.create(title=title)).product_id
    await shop.create(title="Sale nothing off")
    await shop.create(title="axb")
    reply = await shop.stub.ListProducts(pb.ListProductsRequest(query=query), metadata=shop.customer)
    assert [p.product_id for p in reply.products] == [literal]


async def test_a_bound_of_zero_means_no_bound(shop: Shop) -> None:
    free = (await shop.create(price=0)).product_id
    dear = (await shop.create(price=10**9)).product_id
    reply = await shop.stub.ListProducts(pb.ListProductsRequest(min_price_minor=0, max_price_minor=0),
                                         metadata=shop.customer)
    assert sorted(p.product_id for p in reply.products) == sorted([free, dear])
    only_dear = await shop.stub.ListProducts(pb.ListProductsRequest(min_price_minor=1), metadata=shop.customer)
    assert [p.product_id for p in only_dear.products] == [dear]


async def test_page_size_zero_is_twenty_and_above_a_hundred_is_clamped(shop: Shop) -> None:
    for _ in range(3):
        await shop.create()
    default = await shop.stub.ListProducts(pb.ListProductsRequest(page_size=0), metadata=shop.customer)
    huge = await shop.stub.ListProducts(pb.ListProductsRequest(page_size=10_000), metadata=shop.customer)
    assert len(default.products) == len(huge.products) == 3


async def test_page_token_made_for_other_filters_is_refused(shop: Shop) -> None:
    for _ in range(3):
        await shop.create(category="shoes")
    page = await shop.stub.ListProducts(pb.ListProductsRequest(page_size=1, category="shoes"), metadata=shop.customer)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.stub.ListProducts(pb.ListProductsRequest(page_size=1, category="hats",
                                                            page_token=page.next_page_token), metadata=shop.customer)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(caught.value) == ["page_token"]
    # page_size may change between pages
    more = await shop.stub.ListProducts(pb.ListProductsRequest(page_size=5, category="shoes",
                                                               page_token=page.next_page_token), metadata=shop.customer)
    assert len(more.products) == 2


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize("token", [
    "not a token", "!!!!", _b64(b"\xff\xfe"), _b64(b"[]"), _b64(b'{"a": 1, "f": "x"}'),
    _b64(json.dumps({"a": "prd_' OR 1=1 --", "f": "0"}).encode()), "A" * 5000,
])
async def test_undecodable_page_token_is_invalid_argument(shop: Shop, token: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.stub.ListProducts(pb.ListProductsRequest(page_token=token), metadata=shop.customer)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(caught.value) == ["page_token"]


@pytest.mark.parametrize(("request_", "field"), [
    (pb.ListProductsRequest(page_size=-1), "page_size"),
    (pb.ListProductsRequest(min_price_minor=-1), "min_price_minor"),
    (pb.ListProductsRequest(max_price_minor=-5), "max_price_minor"),
    (pb.ListProductsRequest(min_price_minor=500, max_price_minor=100), "min_price_minor"),
    (pb.ListProductsRequest(query="q" * 201), "query"),
    (pb.ListProductsRequest(query="bad\x00query"), "query"),
    (pb.ListProductsRequest(category="c" * 65), "category"),
    (pb.ListProductsRequest(status=42), "status"),  # type: ignore[arg-type]
])
async def test_bad_list_request_names_the_field(shop: Shop, request_: pb.ListProductsRequest, field: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.stub.ListProducts(request_, metadata=shop.seller)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(caught.value) == [field]
