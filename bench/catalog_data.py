"""A synthetic catalog for the search benchmark: deterministic, shaped like a shop's.

Product ``n`` (0-based) is always the same product:
- category: one of 40, skewed (the largest holds ~9 %, the smallest ~1 %);
- title: "<brand> <adjective> <color> <noun> <model>", sometimes with a trailing word; 200
  brands (skewed), 30 adjectives, 20 colors; the noun follows the category; the model code
  ("kx12f") is shared by MODEL_SIZE products (a query for one finds a few);
- description: 8-30 words of a small common vocabulary ("quality" is in about half of them);
- attributes: color and brand, a size for apparel, a material for 60 %;
- price: log-normal, most between 5.00 and 150.00 (minor units); status: 95 % ACTIVE,
  3 % DRAFT, 2 % ARCHIVED; stock: 0-99 units.

``requests(...)`` draws the ListProducts requests of each benchmark scenario from the
same vocabulary, each one distinct (the catalog's search cache never answers them).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from urllib.parse import urlencode

from commerce.catalog.v1 import catalog_pb2
from commerce.common.v1 import money_pb2

CATEGORIES = ("shirts", "shoes", "jackets", "trousers", "dresses", "hats", "bags", "watches", "kitchen", "cookware",
              "coffee", "tea", "books", "toys", "garden", "tools", "lighting", "furniture", "bedding", "bath",
              "sports", "outdoor", "bikes", "camping", "audio", "phones", "laptops", "cameras", "games", "beauty",
              "fragrance", "jewelry", "pets", "baby", "office", "art", "music", "crafts", "auto", "food")
APPAREL = frozenset({"shirts", "shoes", "jackets", "trousers", "dresses", "hats"})
NOUNS = {c: (c[:-1] if c.endswith("s") else c) for c in CATEGORIES}
ADJECTIVES = ("lightweight", "durable", "premium", "classic", "modern", "vintage", "compact", "organic", "handmade",
              "waterproof", "soft", "slim", "oversized", "ergonomic", "portable", "wireless", "insulated",
              "breathable", "recycled", "rugged", "elegant", "rustic", "minimalist", "luxury", "everyday", "travel",
              "sturdy", "cozy", "quickdry", "stretch")
COLORS = ("black", "white", "red", "blue", "green", "navy", "grey", "beige", "brown", "pink", "purple", "orange",
          "yellow", "teal", "olive", "maroon", "silver", "gold", "cream", "charcoal")
MATERIALS = ("cotton", "wool", "leather", "steel", "aluminium", "bamboo", "oak", "linen", "silk", "polyester",
             "ceramic", "glass", "nylon", "canvas", "denim")
SIZES = ("XS", "S", "M", "L", "XL", "XXL")
EXTRAS = ("set", "kit", "pack", "pro", "edition", "bundle", "mini", "max", "plus", "deluxe")
BRANDS = tuple(f"{a}{b}" for a in ("Al", "Bo", "Ca", "De", "El", "Fa", "Go", "Ha", "Ir", "Ju", "Ka", "Lo", "Mi",
                                   "No", "Or", "Pe", "Qu", "Ro", "Sa", "Tu")
               for b in ("ra", "vo", "min", "dex", "lux", "tek", "ora", "vin", "mo", "sun"))
WORDS = ("quality", "comfortable", "designed", "everyday", "use", "made", "with", "care", "perfect", "gift", "easy",
         "clean", "long", "lasting", "fits", "well", "great", "value", "customers", "love", "this", "our", "best",
         "selling", "new", "season", "style")
MODEL_SIZE = 20
PRICE_BUCKETS = (1000, 2500, 5000, 10000, 25000, 50000)


def _weights(count: int, skew: float) -> list[float]:
    return [1 / (i + 1) ** skew for i in range(count)]


_CATEGORY_W = _weights(len(CATEGORIES), 0.8)
_BRAND_W = _weights(len(BRANDS), 1.0)


def model_code(n: int) -> str:
    number = n // MODEL_SIZE
    return f"kx{number:x}"


def entry(n: int) -> catalog_pb2.CatalogEntry:
    rng = random.Random(n * 7919 + 13)
    category = rng.choices(CATEGORIES, _CATEGORY_W)[0]
    brand = rng.choices(BRANDS, _BRAND_W)[0]
    color = rng.choice(COLORS)
    words = [brand, rng.choice(ADJECTIVES), color, NOUNS[category], model_code(n)]
    if rng.random() < 0.3:
        words.append(rng.choice(EXTRAS))
    description = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(8, 30))).capitalize() + "."
    attributes = {"color": color, "brand": brand}
    if category in APPAREL:
        attributes["size"] = rng.choice(SIZES)
    if rng.random() < 0.6:
        attributes["material"] = rng.choice(MATERIALS)
    price = max(100, min(int(math.exp(rng.gauss(8.0, 1.0))), 5_000_000))
    roll = rng.random()
    status = (catalog_pb2.PRODUCT_STATUS_ACTIVE if roll < 0.95 else
              catalog_pb2.PRODUCT_STATUS_DRAFT if roll < 0.98 else catalog_pb2.PRODUCT_STATUS_ARCHIVED)
    return catalog_pb2.CatalogEntry(
        product=catalog_pb2.Product(sku=f"SKU-{n:07d}", title=" ".join(words).capitalize(), description=description,
                                    category=category, attributes=attributes, status=status,
                                    price=money_pb2.Money(currency_code="USD", amount_minor=price)),
        on_hand=n % 100)


def batches(count: int, size: int) -> Iterator[bytes]:
    """ImportProductsRequest messages, serialized, ``size`` entries each, for products 0..count-1."""
    for start in range(0, count, size):
        yield catalog_pb2.ImportProductsRequest(
            entries=[entry(n) for n in range(start, min(start + size, count))]).SerializeToString()


# --- requests of the scenarios ----------------------------------------------------------------

def _path(rng: random.Random, distinct: int, **params: object) -> str:
    """A ListProducts REST path; ``distinct`` makes it differ from every other request of the run
    without changing what it finds: an always-true restriction (every price is >= 0)."""
    fields: list[tuple[str, object]] = [("pageSize", 20)]
    restriction = f"price >= -{distinct + 1}"
    filter_ = params.pop("filter", "")
    fields.append(("filter", f"{filter_} AND {restriction}" if filter_ else restriction))
    for name, value in params.items():
        for item in value if isinstance(value, list | tuple) else [value]:
            fields.append((name, item))
    return "/v1/products?" + urlencode(fields)


def _nonsense(rng: random.Random) -> str:
    return "".join(rng.choice("zqjvw") for _ in range(rng.randrange(5, 9)))


def requests(scenario: str, count: int, products: int, seed: int = 1) -> list[str]:
    """``count`` distinct REST paths of ``scenario``."""
    rng = random.Random(f"{scenario}-{seed}")
    models = max(1, products // MODEL_SIZE)
    made: list[str] = []
    for i in range(count):
        if scenario == "text-none":  # words no product holds (typo widening finds nothing either)
            made.append(_path(rng, i, query=f"{_nonsense(rng)} {_nonsense(rng)}"))
        elif scenario == "text-few":  # a model code, a sku, or a model code and its color
            n = rng.randrange(products)
            query = rng.choice([model_code(rng.randrange(models) * MODEL_SIZE), f"SKU-{n:07d}",
                                f"{model_code(n)} {entry(n).product.attributes['color']}"])
            made.append(_path(rng, i, query=query))
        elif scenario == "text-most":  # words found in tens of thousands to most products
            query = rng.choice(["quality", "great value", "perfect gift", rng.choice(COLORS), rng.choice(ADJECTIVES),
                                f"{rng.choice(ADJECTIVES)} {rng.choice(COLORS)}", rng.choice(CATEGORIES),
                                "comfortable or durable"])
            made.append(_path(rng, i, query=query))
        elif scenario == "filter":
            category = rng.choice(CATEGORIES)
            low = rng.choice([500, 1000, 2000, 4000])
            choice = rng.randrange(4)
            if choice == 0:
                filter_ = f'category = "{category}" AND price >= {low} AND price < {low * 3}'
            elif choice == 1:
                filter_ = f'attributes.color = "{rng.choice(COLORS)}" AND attributes.size = "{rng.choice(SIZES)}"'
            elif choice == 2:
                filter_ = (f'category = "{rng.choice(sorted(APPAREL))}" AND (attributes.color = "{rng.choice(COLORS)}" '
                           f'OR attributes.color = "{rng.choice(COLORS)}") AND attributes.material:*')
            else:
                filter_ = f'attributes.brand = "{rng.choice(BRANDS)}" AND NOT attributes.material = "leather"'
            made.append(_path(rng, i, filter=filter_))
        elif scenario == "sort":
            order = rng.choice(["price", "price desc", "create_time desc", "create_time", "title", "title desc"])
            extra: dict[str, object] = rng.choice([
                {}, {"filter": f'category = "{rng.choice(CATEGORIES)}"'}, {"query": rng.choice(COLORS)},
                {"query": model_code(rng.randrange(models) * MODEL_SIZE)},
                {"filter": f'attributes.color = "{rng.choice(COLORS)}"'}])
            made.append(_path(rng, i, orderBy=order, **extra))
        elif scenario == "facets":
            facets = ["category", "price", "attributes.color", "attributes.size"]
            extra = rng.choice([
                {}, {"query": rng.choice(["quality", rng.choice(COLORS), rng.choice(ADJECTIVES)])},
                {"filter": f'category = "{rng.choice(CATEGORIES)}"'},
                {"query": model_code(rng.randrange(models) * MODEL_SIZE)},
                {"filter": f'attributes.color = "{rng.choice(COLORS)}" AND price < {rng.choice([2000, 5000])}'}])
            made.append(_path(rng, i, facets=facets, priceBuckets=list(PRICE_BUCKETS), **extra))
        else:
            raise ValueError(f"unknown scenario {scenario!r}")
    return made


SCENARIOS = ("text-none", "text-few", "text-most", "filter", "sort", "facets")
