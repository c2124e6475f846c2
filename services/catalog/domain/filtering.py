"""The ``filter`` of ListProducts: a subset of AIP-160, parsed into a typed tree.

    filter     = [expression]
    expression = sequence {"AND" sequence}          lowest precedence
    sequence   = factor {factor}                    juxtaposition is AND too
    factor     = term {"OR" term}                   OR binds tighter than AND (AIP-160)
    term       = ["NOT" | "-"] simple
    simple     = restriction | "(" expression ")"
    restriction= member comparator value | "attributes" ":" key

Members: ``category``, ``sku``, ``price`` (an integer amount in minor units; also
``price.amount_minor``), ``price.currency_code``, ``status`` (ACTIVE, DRAFT,
ARCHIVED; = and != only), ``create_time`` (an RFC 3339 string), and
``attributes.<key>`` (a key that is not a plain word is quoted:
``attributes."screen size"``). Comparators: ``= != < <= > >=`` and ``:`` (has):
``attributes:color`` and ``attributes.color:*`` ask for the key, ``attributes.color:red``
for that value. An attribute compared with a number by ``< <= > >=`` compares as a
number (values that are not numbers do not match); with a string, as text. Values are
"double" or 'single' quoted strings (backslash escapes), or bare words and numbers.

Anything else is INVALID_ARGUMENT on field ``filter``, naming the 1-based character
position and what was expected there. The tree holds typed values only: the store
turns it into SQL whose every value is a parameter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import TypeAlias

from services.catalog.domain.product import ATTRIBUTE_KEY_MAX, PRICE_MAX, ProductStatus
from services.runtime.errors import InvalidArgument
from services.runtime.validation import control_characters

FILTER_MAX = 2000
DEPTH_MAX = 16
CONDITIONS_MAX = 50
VALUE_MAX = 500
FIELD = "filter"
MEMBERS = "category, sku, price, price.currency_code, status, create_time or attributes.<key>"
_COMPARATORS = ("<=", ">=", "!=", "=", "<", ">", ":")
_ORDERED = frozenset({"<", "<=", ">", ">="})
_SPECIAL = set("()\"'=<>!:")
_NUMBER = re.compile(r"^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?$")
_INTEGER = re.compile(r"^-?(?:0|[1-9][0-9]*)$")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def filter_error(position: int, problem: str) -> InvalidArgument:
    """INVALID_ARGUMENT on ``filter``: where (1-based character) and what was wrong or expected there."""
    error = InvalidArgument.field(FIELD, f"at position {position}: {problem}")
    error.reason = "INVALID_FILTER"
    error.metadata.update({"position": str(position), "problem": problem})
    return error


# --- the tree -------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    """What a restriction is about: one of the fixed fields, or an attribute (``key``)."""

    name: str  # category, sku, price, currency, status, create_time, attribute
    key: str = ""

    def __str__(self) -> str:
        if self.name != "attribute":
            return {"price": "price", "currency": "price.currency_code"}.get(self.name, self.name)
        return f"attributes.{self.key}" if _KEY.fullmatch(self.key) else f"attributes.{_quote(self.key)}"


Value: TypeAlias = str | int | Decimal | datetime | ProductStatus | None  # None: "*" (present)


@dataclass(frozen=True)
class Compare:
    member: Member
    op: str  # = != < <= > >= :
    value: Value

    def __str__(self) -> str:
        value = self.value
        if value is None:
            shown = "*"
        elif isinstance(value, str):
            shown = _quote(value)
        elif isinstance(value, datetime):
            shown = _quote(value.isoformat())
        elif isinstance(value, ProductStatus):
            shown = value.value
        else:
            shown = str(value)
        return f"{self.member} {self.op} {shown}" if self.op != ":" else f"{self.member}:{shown}"


@dataclass(frozen=True)
class HasKey:
    key: str

    def __str__(self) -> str:
        return f"attributes:{_quote(self.key)}"


@dataclass(frozen=True)
class Not:
    operand: Expr

    def __str__(self) -> str:
        return f"NOT {_grouped(self.operand)}"


@dataclass(frozen=True)
class AllOf:
    operands: tuple[Expr, ...]

    def __str__(self) -> str:
        return " AND ".join(_grouped(o) for o in self.operands)


@dataclass(frozen=True)
class AnyOf:
    operands: tuple[Expr, ...]

    def __str__(self) -> str:
        return " OR ".join(_grouped(o) for o in self.operands)


Expr: TypeAlias = Compare | HasKey | Not | AllOf | AnyOf


def _grouped(expr: Expr) -> str:
    return f"({expr})" if isinstance(expr, AllOf | AnyOf) else str(expr)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def canonical(expr: Expr | None) -> str:
    """One spelling per tree: what page tokens are bound to (spacing does not matter)."""
    return "" if expr is None else str(expr)


def mentions_status(expr: Expr | None) -> bool:
    if expr is None or isinstance(expr, HasKey):
        return False
    if isinstance(expr, Compare):
        return expr.member.name == "status"
    if isinstance(expr, Not):
        return mentions_status(expr.operand)
    return any(mentions_status(o) for o in expr.operands)


# --- tokens ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    kind: str  # text, string, op, (, ), end
    text: str
    position: int  # 1-based
    spaced: bool  # whitespace before it


def tokens(source: str) -> list[Token]:
    found: list[Token] = []
    i, n, spaced = 0, len(source), False
    while i < n:
        c = source[i]
        if c.isspace():
            i, spaced = i + 1, True
            continue
        start = i
        if c in "()":
            found.append(Token(c, c, start + 1, spaced))
            i += 1
        elif c in "\"'":
            text, i = _string(source, i)
            found.append(Token("string", text, start + 1, spaced))
        elif c in "=<>!:":
            op = next((o for o in _COMPARATORS if source.startswith(o, i)), None)
            if op is None:
                raise filter_error(start + 1, "'!' must be followed by '=' (!=)")
            found.append(Token("op", op, start + 1, spaced))
            i += len(op)
        else:
            while i < n and not source[i].isspace() and source[i] not in _SPECIAL:
                i += 1
            found.append(Token("text", source[start:i], start + 1, spaced))
        spaced = False
    found.append(Token("end", "", n + 1, spaced))
    return found


_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'"}


def _string(source: str, start: int) -> tuple[str, int]:
    quote, i = source[start], start + 1
    out: list[str] = []
    while i < len(source):
        c = source[i]
        if c == quote:
            return "".join(out), i + 1
        if c == "\\":
            if i + 1 >= len(source) or source[i + 1] not in _ESCAPES:
                raise filter_error(i + 1, "a backslash in a string escapes one of \\ \" ' n t")
            out.append(_ESCAPES[source[i + 1]])
            i += 2
            continue
        out.append(c)
        i += 1
    raise filter_error(start + 1, f"the string starting here has no closing {quote}")


# --- parsing --------------------------------------------------------------------------


def parse(source: str) -> Expr | None:
    """The tree of a filter (None when it is empty or blank)."""
    if len(source) > FILTER_MAX:
        raise InvalidArgument.field(FIELD, f"must be at most {FILTER_MAX} characters (got {len(source)})")
    if control_characters(source, "\t\n\r"):
        raise InvalidArgument.field(FIELD, "must not contain control characters")
    parser = _Parser(tokens(source))
    if parser.peek.kind == "end":
        return None
    expr = parser.expression(0)
    if parser.peek.kind != "end":
        token = parser.peek
        if token.kind == ")":
            raise filter_error(token.position, "unmatched ')'")
        raise filter_error(token.position, f"expected AND, OR or the end of the filter, found {_show(token)}")
    return expr


def _show(token: Token) -> str:
    if token.kind == "end":
        return "the end of the filter"
    if token.kind == "string":
        return f"the string {_quote(token.text)}"[:80]
    return f"'{token.text[:40]}'"


class _Parser:
    def __init__(self, found: list[Token]) -> None:
        self._tokens = found
        self._at = 0
        self._conditions = 0

    @property
    def peek(self) -> Token:
        return self._tokens[self._at]

    def _next(self) -> Token:
        token = self._tokens[self._at]
        if token.kind != "end":
            self._at += 1
        return token

    def _keyword(self, word: str) -> bool:
        token = self.peek
        return token.kind == "text" and token.text == word

    def _depth(self, depth: int, token: Token) -> None:
        if depth > DEPTH_MAX:
            raise filter_error(token.position, f"parentheses and NOT nest at most {DEPTH_MAX} deep")

    def expression(self, depth: int) -> Expr:
        parts = [self._sequence(depth)]
        while self._keyword("AND"):
            self._next()
            parts.append(self._sequence(depth))
        return parts[0] if len(parts) == 1 else AllOf(tuple(parts))

    def _sequence(self, depth: int) -> Expr:
        parts = [self._factor(depth)]
        while self.peek.kind in ("text", "string", "(") and not self._keyword("AND") and not self._keyword("OR"):
            parts.append(self._factor(depth))
        return parts[0] if len(parts) == 1 else AllOf(tuple(parts))

    def _factor(self, depth: int) -> Expr:
        parts = [self._term(depth)]
        while self._keyword("OR"):
            self._next()
            parts.append(self._term(depth))
        return parts[0] if len(parts) == 1 else AnyOf(tuple(parts))

    def _term(self, depth: int) -> Expr:
        token = self.peek
        if self._keyword("NOT"):
            self._next()
            self._depth(depth + 1, token)
            return Not(self._term(depth + 1))
        if token.kind == "text" and token.text.startswith("-"):
            self._depth(depth + 1, token)
            if token.text == "-":
                self._next()
                if self.peek.kind != "(" or self.peek.spaced:
                    raise filter_error(token.position, "'-' negates the restriction or '(' right after it")
                return Not(self._simple(depth + 1))
            # "-attributes:color": the rest of the word is the member
            self._tokens[self._at] = Token("text", token.text[1:], token.position + 1, False)
            return Not(self._simple(depth + 1))
        return self._simple(depth)

    def _simple(self, depth: int) -> Expr:
        token = self.peek
        if token.kind == "(":
            self._next()
            self._depth(depth + 1, token)
            if self.peek.kind == ")":
                raise filter_error(self.peek.position, "expected a restriction inside '( )'")
            inner = self.expression(depth + 1)
            if self.peek.kind != ")":
                raise filter_error(self.peek.position, f"expected ')' to close the '(' at position "
                                                       f"{token.position}, found {_show(self.peek)}")
            self._next()
            return inner
        return self._restriction()

    def _restriction(self) -> Expr:
        token = self._next()
        if token.kind == "end":
            raise filter_error(token.position, f"expected a restriction ({MEMBERS}) or '('")
        if token.kind == ")":
            raise filter_error(token.position, "unmatched ')'")
        if token.kind == "op":
            raise filter_error(token.position, f"expected a field name ({MEMBERS}) before '{token.text}'")
        if token.text in ("AND", "OR"):
            raise filter_error(token.position, f"expected a restriction before {token.text}")
        self._conditions += 1
        if self._conditions > CONDITIONS_MAX:
            raise filter_error(token.position, f"a filter holds at most {CONDITIONS_MAX} restrictions")
        member = self._member(token)
        op_token = self._next()
        if op_token.kind != "op":
            if member is None:
                raise filter_error(op_token.position, "expected ':' and a key after 'attributes' (attributes:color)")
            raise filter_error(op_token.position, f"expected a comparator (=, !=, <, <=, >, >=, :) after "
                                                  f"'{member}', found {_show(op_token)}")
        value_token = self._next()
        if value_token.kind not in ("text", "string"):
            raise filter_error(value_token.position, f"expected a value after '{op_token.text}', "
                                                     f"found {_show(value_token)}")
        if member is None:  # attributes:KEY
            if op_token.text != ":":
                raise filter_error(op_token.position, "'attributes' takes ':' and a key (attributes:color), or "
                                                      "is compared by key (attributes.color = \"red\")")
            return HasKey(_attribute_key(value_token))
        return Compare(member, op_token.text, _value(member, op_token, value_token))

    def _member(self, token: Token) -> Member | None:
        """The member a restriction names; None for the bare ``attributes`` of ``attributes:KEY``."""
        if token.kind == "string":
            raise filter_error(token.position, f"expected a field name ({MEMBERS}), found {_show(token)}; "
                                               "free text belongs in 'query'")
        name = token.text
        if name == "attributes":
            return None
        if name.startswith("attributes."):
            key = name.removeprefix("attributes.")
            if not key:  # attributes."screen size"
                quoted = self.peek
                if quoted.kind != "string" or quoted.spaced:
                    raise filter_error(quoted.position, "expected an attribute key after 'attributes.'")
                self._next()
                return Member("attribute", _checked_key(quoted.text, quoted.position))
            return Member("attribute", _checked_key(key, token.position))
        known = {"category": "category", "sku": "sku", "price": "price", "price.amount_minor": "price",
                 "price.currency_code": "currency", "status": "status", "create_time": "create_time"}
        if name not in known:
            hint = "; free text belongs in 'query'" if "." not in name else ""
            raise filter_error(token.position, f"unknown field '{name[:40]}': filter on {MEMBERS}{hint}")
        return Member(known[name])


def _checked_key(key: str, position: int) -> str:
    if not key.strip() or len(key) > ATTRIBUTE_KEY_MAX or control_characters(key):
        raise filter_error(position, f"an attribute key is 1-{ATTRIBUTE_KEY_MAX} characters, not blank")
    return key


def _attribute_key(token: Token) -> str:
    return _checked_key(token.text, token.position)


def _value(member: Member, op_token: Token, token: Token) -> Value:
    op, text, position = op_token.text, token.text, token.position
    if token.kind == "text" and text == "*":
        if op != ":":
            raise filter_error(position, "'*' (present) goes with ':' (attributes.color:*)")
        if member.name != "attribute":
            raise filter_error(op_token.position, f"every product has a {member}: ':*' applies to attributes")
        return None
    if op == ":" and member.name != "attribute":
        raise filter_error(op_token.position, f"':' applies to attributes; compare {member} with =, != ...")
    if len(text) > VALUE_MAX:
        raise filter_error(position, f"a value is at most {VALUE_MAX} characters")
    name = member.name
    if name in ("category", "sku", "currency"):
        return text
    if name == "price":
        if token.kind != "text" or not _INTEGER.fullmatch(text) or abs(int(text)) > PRICE_MAX:
            raise filter_error(position, "price compares with an integer amount in minor units (1999 for 19.99), "
                                         f"at most {PRICE_MAX}")
        return int(text)
    if name == "status":
        if op not in ("=", "!="):
            raise filter_error(op_token.position, "status is compared with = or != only")
        status = text.removeprefix("PRODUCT_STATUS_")
        if status not in ProductStatus.__members__:
            raise filter_error(position, "status is ACTIVE, DRAFT or ARCHIVED")
        return ProductStatus[status]
    if name == "create_time":
        return _timestamp(text, position)
    # an attribute: a number when ordered and unquoted, else text
    if op in _ORDERED and token.kind == "text" and _NUMBER.fullmatch(text):
        try:
            return Decimal(text)
        except InvalidOperation:  # pragma: no cover - the pattern only lets numbers through
            raise filter_error(position, "not a number") from None
    return text


def _timestamp(text: str, position: int) -> datetime:
    problem = 'create_time compares with an RFC 3339 time, e.g. "2026-01-31T00:00:00Z"'
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise filter_error(position, problem) from None
    if moment.tzinfo is None or "T" not in text.upper():
        raise filter_error(position, problem + " (with its offset)")
    return moment
