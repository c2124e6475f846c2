"""Access rules are read from the proto declarations (pure, no servers)."""

from __future__ import annotations

from commerce.catalog.v1 import catalog_pb2
from commerce.tenant.v1 import tenant_pb2

from services.runtime.access import rules_for


def test_rules_come_from_the_proto_option() -> None:
    rules = rules_for([catalog_pb2.DESCRIPTOR.services_by_name["CatalogService"]])
    create = rules["/commerce.catalog.v1.CatalogService/CreateProduct"]
    assert create.allows(frozenset({"seller"}))
    assert not create.allows(frozenset({"customer"}))
    assert not create.anonymous
    assert rules["/commerce.catalog.v1.CatalogService/GetProduct"].allows(frozenset({"guest"}))


def test_anonymous_calls_are_only_those_declared_anonymous() -> None:
    rules = rules_for([tenant_pb2.DESCRIPTOR.services_by_name["TenantService"]])
    anonymous = sorted(path.rsplit("/", 1)[1] for path, rule in rules.items() if rule.anonymous)
    assert anonymous == ["CreateGuestToken", "GetJwks", "Login", "RegisterCustomer"]
