"""Every refusal the edge gives itself, with one error shape: the one documented list.

A REST caller gets a JSON google.rpc.Status (``code``, ``message``, an ErrorInfo with the
``reason`` and domain "commerce-mesh"); a native gRPC caller gets the matching status code
with the same Status in ``grpc-status-details-bin`` (what grpcio-status, grpc-js and every
gRPC library read as the rich error). Services refuse with the same reasons for the same
cause (a bad token is WRONG_AUDIENCE at the edge and on a service's own port alike).

Envoy answers most of these itself (local replies): render.py turns each row into a
local_reply_config mapper that recognises the reply by its response code details (CEL) or
HTTP status. The body-shape rows (``match`` None) are answered by meshinfo's body check
(services/meshinfo/bodycheck.py), in the same shape. README "Errors" shows this table;
tests/edge/test_refusals.py meets every row against a real Envoy.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from services.edge.ratelimit import RETRY_AFTER_SECONDS
from services.runtime.errors import ERROR_DOMAIN

DOMAIN = ERROR_DOMAIN
# JSON nested deeper than this is refused before anything runs (no request message nests half as deep).
MAX_JSON_DEPTH = 32
MAX_BODY_BYTES = 1024 * 1024


def _details(text: str) -> str:
    """Envoy's response code details of a jwt_authn refusal with this message."""
    return "jwt_authn_access_denied{" + text.replace(" ", "_") + "}"


def _jwt(*texts: str) -> str:
    return " || ".join(f'response.code_details == "{_details(t)}"' for t in texts)


@dataclass(frozen=True)
class Refusal:
    reason: str  # ErrorInfo.reason
    http_status: int  # REST
    code: str  # google.rpc.Code name: the JSON body's code and the native gRPC status
    message: str  # what is wrong
    cause: str  # what the caller sent, for the README
    match: str | int | None  # CEL over the local reply, or its HTTP status; None: meshinfo's body check
    grpc: bool = True  # native gRPC calls can meet it too
    grpc_code: str | None = None  # native gRPC status, when it differs from ``code``
    with_detail: bool = False  # REST message ends with Envoy's own text (e.g. which query parameter)

    @property
    def code_number(self) -> int:
        return int(code_pb2.Code.Value(self.code))

    @property
    def grpc_code_name(self) -> str:
        return self.grpc_code or self.code

    def status(self) -> status_pb2.Status:
        """The google.rpc.Status a native gRPC caller gets (its message is grpc-message too)."""
        info = any_pb2.Any()
        info.Pack(error_details_pb2.ErrorInfo(reason=self.reason, domain=DOMAIN))
        return status_pb2.Status(code=int(code_pb2.Code.Value(self.grpc_code_name)), message=self.message,
                                 details=[info])

    def status_bin(self) -> str:
        """``grpc-status-details-bin``: the Status, serialized and base64-encoded."""
        return base64.b64encode(self.status().SerializeToString()).decode()


# In matching order: the first row whose ``match`` holds answers. Edge rows only; meshinfo's at the end.
REFUSALS: tuple[Refusal, ...] = (
    Refusal("MALFORMED_TOKEN", 401, "UNAUTHENTICATED",
            "authorization must be 'Bearer <token>' with a well-formed JWT (three base64url parts)",
            "another scheme, two authorization headers, or a token that is not a JWT",
            'response.code_details.startsWith("rbac_access_denied")'),
    Refusal("BAD_ALGORITHM", 401, "UNAUTHENTICATED", "the token's alg is not supported: tokens are RS256",
            "a token whose header names no or an unknown algorithm (e.g. none)",
            _jwt("Jwt header [alg] is not supported", "Jwt header [alg] field is required and must be a string")),
    Refusal("WRONG_ISSUER", 401, "UNAUTHENTICATED", "the token was not issued by this mesh (iss)",
            "a token of another issuer", _jwt("Jwt issuer is not configured")),
    Refusal("TOKEN_NOT_YET_VALID", 401, "UNAUTHENTICATED", "the token is not valid yet (nbf)",
            "a token used before its nbf (30 s of clock skew allowed)", _jwt("Jwt not yet valid")),
    Refusal("TOKEN_EXPIRED", 401, "UNAUTHENTICATED", "the token has expired: log in again for a new one",
            "a token past its exp (30 s of clock skew allowed)", _jwt("Jwt is expired")),
    Refusal("WRONG_AUDIENCE", 401, "UNAUTHENTICATED", "the token is meant for another audience (aud)",
            "a token for another audience", _jwt("Audiences in Jwt are not allowed")),
    Refusal("UNKNOWN_KEY", 401, "UNAUTHENTICATED", "no published signing key matches the token's kid and alg",
            "a token signed by a key the JWKS does not publish",
            _jwt("Jwks doesn't have key to match kid or alg from Jwt")),
    Refusal("BAD_SIGNATURE", 401, "UNAUTHENTICATED", "the token's signature does not verify",
            "a token whose claims or signature were changed", _jwt("Jwt verification fails")),
    Refusal("KEYS_UNAVAILABLE", 503, "UNAVAILABLE", "the signing keys cannot be fetched right now: retry",
            "any token while the tenant service's JWKS cannot be read",
            'response.code_details.startsWith("jwt_authn_access_denied{Jwks")'),
    Refusal("MALFORMED_TOKEN", 401, "UNAUTHENTICATED",
            "authorization must be 'Bearer <token>' with a well-formed JWT (three base64url parts)",
            "a JWT whose header or claims cannot be read",
            'response.code_details.startsWith("jwt_authn_access_denied")'),
    Refusal("RATE_LIMITED", 429, "RESOURCE_EXHAUSTED",
            f"rate limit exceeded: retry after {RETRY_AFTER_SECONDS} s (see retry-after, x-ratelimit-*)",
            "more calls than the user's, tenant's or (without a token) address's bucket holds",
            'response.code_details == "local_rate_limited"'),
    Refusal("UNKNOWN_METHOD", 404, "NOT_FOUND", "no such method or path",
            "a path or HTTP method the API does not have (gRPC: a service the edge does not route)", 404,
            grpc_code="UNIMPLEMENTED", with_detail=True),
    Refusal("INVALID_PARAMETER", 400, "INVALID_ARGUMENT", "a query or path parameter does not fit the method",
            "an unknown query parameter, or a value of the wrong type",
            'response.code_details == "early_grpc_json_transcode_failure{INVALID_ARGUMENT}"',
            grpc=False, with_detail=True),
    Refusal("INVALID_FIELD_VALUE", 400, "INVALID_ARGUMENT", "the request body does not fit the method's message",
            "a body value Envoy's transcoder cannot read (a backstop: the body check refuses those first)",
            'response.code_details == "grpc_json_transcode_failure{INVALID_ARGUMENT}"', grpc=False, with_detail=True),
    Refusal("INVALID_PATH", 400, "INVALID_ARGUMENT", "the request path is not a valid path (e.g. it holds %00)",
            "a path that cannot be normalised", 'response.code_details == "path_normalization_failed"',
            grpc=False),
    Refusal("BODY_TOO_LARGE", 413, "RESOURCE_EXHAUSTED", f"the request body is larger than {MAX_BODY_BYTES} bytes",
            "a REST body over 1 MiB", 413, grpc=False),
    Refusal("HEADERS_TOO_LARGE", 431, "RESOURCE_EXHAUSTED", "the request headers are too large",
            "request headers over 60 KiB over HTTP/1.1 (over HTTP/2, gRPC included, the connection is closed)",
            431, grpc=False),
    Refusal("BODY_CHECK_UNAVAILABLE", 503, "UNAVAILABLE", "the request body cannot be checked right now: retry",
            "a REST body while meshinfo's body check is down",
            'response.code_details.startsWith("ext_authz_error")', grpc=False),
    Refusal("UPSTREAM_TIMEOUT", 504, "DEADLINE_EXCEEDED", "the service did not answer in time",
            "a call the owning service did not answer within the route timeout", 504),
    Refusal("SERVICE_UNAVAILABLE", 503, "UNAVAILABLE", "the service is unavailable right now: retry",
            "a call while no replica of the owning service is healthy", 503),
    Refusal("BAD_REQUEST", 400, "INVALID_ARGUMENT", "the request is not valid for this API",
            "anything else Envoy refuses as a bad request", 400, grpc=False, with_detail=True),
    # meshinfo's body check (REST requests with a body), before any service runs.
    Refusal("MALFORMED_JSON", 400, "INVALID_ARGUMENT", "the request body is not valid JSON (RFC 8259)",
            "a trailing comma, single quotes, a comment, an unquoted key, NaN, text that is not UTF-8", None,
            grpc=False),
    Refusal("DUPLICATE_FIELD", 400, "INVALID_ARGUMENT", "a field is given twice in the request body",
            'the same key twice in one object, or a field under both its names ("productId", "product_id")', None,
            grpc=False),
    Refusal("JSON_TOO_DEEP", 400, "INVALID_ARGUMENT", f"the request body nests deeper than {MAX_JSON_DEPTH} levels",
            f"JSON nested more than {MAX_JSON_DEPTH} levels", None, grpc=False),
    Refusal("UNKNOWN_FIELD", 400, "INVALID_ARGUMENT", "the request body has a field the method does not have",
            "a key that names no field (BadRequest lists each)", None, grpc=False),
    Refusal("INVALID_FIELD_VALUE", 400, "INVALID_ARGUMENT", "the request body does not fit the method's message",
            "a JSON value of the wrong type for its field (e.g. 1.5 or \"x\" for an integer)", None, grpc=False),
)


def by_reason(reason: str) -> Refusal:
    """The first row with this reason (meshinfo's rows are the last of their reason)."""
    return next(r for r in REFUSALS if r.reason == reason)


def body_check(reason: str) -> Refusal:
    """meshinfo's row of this reason."""
    return next(r for r in REFUSALS if r.reason == reason and r.match is None)
