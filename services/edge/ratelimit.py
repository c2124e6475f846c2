"""Local rate limits at the edge (Envoy's local_ratelimit, no external service).

Three kinds of token bucket, one per user, per tenant and per client address:

- a call with a valid token takes a token from its user's bucket (claim ``sub``) and
  from its tenant's (claim ``tenant``, shared by all the tenant's users; tenants in
  ``ratelimit_tenant_overrides`` get their own rate);
- a call without a token takes one from its client address's bucket (IPv6: the /64).

jwt_authn copies the two claims into ``x-commerce-sub`` / ``x-commerce-tenant``; copies a
client sends are removed before jwt_authn runs (jwt_authn drops them too; this does not rely
on it), so no one can pick another's bucket. Each
kind keeps at most ``ratelimit_max_buckets`` buckets (least recently used evicted first).
Buckets live in each Envoy process: N replicas allow N times the rate.

A limited REST call gets 429 with a JSON google.rpc.Status (code 8, RESOURCE_EXHAUSTED,
reason RATE_LIMITED: services/edge/refusals.py), a limited gRPC call RESOURCE_EXHAUSTED
with the same details; both carry ``x-ratelimit-limit/remaining/reset`` and ``retry-after``.
Envoy's own JWKS fetch (from 127.0.0.1 to this listener) is never limited, so tokens keep
verifying whatever a local client does.
"""

from __future__ import annotations

from typing import Any

from services.runtime.settings import Settings

SUB_HEADER = "x-commerce-sub"
TENANT_HEADER = "x-commerce-tenant"
IDENTITY_HEADERS = (SUB_HEADER, TENANT_HEADER)
CLAIM_HEADERS = (("sub", SUB_HEADER), ("tenant", TENANT_HEADER))
USER, TENANT, ANONYMOUS, ADDRESS = "user", "tenant", "anonymous", "masked_remote_address"
# Buckets refill continuously at `per_second`; one token is back within a second.
RETRY_AFTER_SECONDS = 1
# Bucket of calls no descriptor matches (none should): effectively unlimited.
_UNMATCHED = {"max_tokens": 1_000_000, "tokens_per_fill": 1_000_000, "fill_interval": "1s"}


def _typed(type_name: str, **fields: Any) -> dict[str, Any]:
    return {"@type": f"type.googleapis.com/{type_name}", **fields}


def _bucket(per_second: int, burst: int) -> dict[str, Any]:
    return {"max_tokens": burst, "tokens_per_fill": per_second, "fill_interval": "1s"}


def claim_to_headers() -> list[dict[str, str]]:
    """For the jwt_authn provider: the claims the buckets are keyed on, as request headers."""
    return [{"claim_name": claim, "header_name": header} for claim, header in CLAIM_HEADERS]


def strip_identity_headers() -> dict[str, Any]:
    """A header_mutation filter (first in the chain) removing clients' copies of the claim headers."""
    return _typed("envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
                  mutations={"request_mutations": [{"remove": h} for h in IDENTITY_HEADERS]})


def override_burst(settings: Settings, per_second: int) -> int:
    """A tenant override's burst: the default tenant bucket's burst/rate ratio, at least one second's worth."""
    ratio = settings.ratelimit_tenant_burst / settings.ratelimit_tenant_per_second
    return max(per_second, round(per_second * ratio))


def descriptors(settings: Settings) -> list[dict[str, Any]]:
    """Buckets: entries with a key and no value get one bucket per distinct value."""
    s = settings
    bad = sorted(tenant for tenant, rate in s.ratelimit_tenant_overrides.items() if rate < 1)
    if bad:
        raise ValueError(f"ratelimit_tenant_overrides: requests per second must be at least 1 (tenants {bad})")
    overrides = [
        {"entries": [{"key": TENANT, "value": tenant}], "token_bucket": _bucket(rate, override_burst(s, rate))}
        for tenant, rate in sorted(s.ratelimit_tenant_overrides.items())
    ]
    return [
        {"entries": [{"key": USER}],
         "token_bucket": _bucket(s.ratelimit_user_per_second, s.ratelimit_user_burst)},
        *overrides,
        {"entries": [{"key": TENANT}],
         "token_bucket": _bucket(s.ratelimit_tenant_per_second, s.ratelimit_tenant_burst)},
        {"entries": [{"key": ANONYMOUS, "value": "true"}, {"key": ADDRESS}],
         "token_bucket": _bucket(s.ratelimit_anonymous_per_second, s.ratelimit_anonymous_burst)},
    ]


def rate_limits() -> list[dict[str, Any]]:
    """What each request is counted against (a descriptor is skipped when its header is absent)."""
    return [
        {"actions": [{"request_headers": {"header_name": SUB_HEADER, "descriptor_key": USER}}]},
        {"actions": [{"request_headers": {"header_name": TENANT_HEADER, "descriptor_key": TENANT}}]},
        {"actions": [
            {"header_value_match": {"descriptor_key": ANONYMOUS, "descriptor_value": "true", "expect_match": False,
                                    "headers": [{"name": SUB_HEADER, "present_match": True}]}},
            {"masked_remote_address": {"v4_prefix_mask_len": 32, "v6_prefix_mask_len": 64}},
        ]},
    ]


def _always() -> dict[str, Any]:
    return {"default_value": {"numerator": 100, "denominator": "HUNDRED"}, "runtime_key": "edge.ratelimit.enabled"}


def local_ratelimit(settings: Settings) -> dict[str, Any]:
    return _typed(
        "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
        stat_prefix="edge_ratelimit",
        token_bucket=_UNMATCHED,
        always_consume_default_token_bucket=False,
        filter_enabled=_always(),
        filter_enforced=_always(),
        rate_limits=rate_limits(),
        descriptors=descriptors(settings),
        max_dynamic_descriptors=settings.ratelimit_max_buckets,
        enable_x_ratelimit_headers="DRAFT_VERSION_03",
        rate_limited_as_resource_exhausted=True,
        response_headers_to_add=[{"header": {"key": "retry-after", "value": str(RETRY_AFTER_SECONDS)},
                                  "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}],
    )


def ratelimit_filter(settings: Settings, jwks_path: str) -> dict[str, Any]:
    """local_ratelimit, skipped only for Envoy's own JWKS fetch (that path, from 127.0.0.1)."""

    def is_(input_name: str, input_config: dict[str, Any], exact: str) -> dict[str, Any]:
        return {"single_predicate": {"input": {"name": input_name, "typed_config": input_config},
                                     "value_match": {"exact": exact}}}

    self_fetch = {"and_matcher": {"predicate": [
        is_(":path", _typed("envoy.type.matcher.v3.HttpRequestHeaderMatchInput", header_name=":path"), jwks_path),
        is_("source_ip", _typed("envoy.extensions.matching.common_inputs.network.v3.SourceIPInput"), "127.0.0.1"),
    ]}}
    skip = {"action": {"name": "skip",
                       "typed_config": _typed("envoy.extensions.filters.common.matcher.action.v3.SkipFilter")}}
    return _typed(
        "envoy.extensions.common.matching.v3.ExtensionWithMatcher",
        extension_config={"name": "envoy.filters.http.local_ratelimit", "typed_config": local_ratelimit(settings)},
        xds_matcher={"matcher_list": {"matchers": [{"predicate": self_fetch, "on_match": skip}]}},
    )
