"""Annotated dependency aliases, so routers name what they need in one word."""

from __future__ import annotations

import difflib
import ipaddress
import re
from typing import Annotated, Any

import asyncpg
import valkey.asyncio as valkey
from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer
from temporalio.client import Client

from api.errors import InvalidQuery
from api.objectstore import ObjectStore
from api.resources import Resources
from api.settings import Settings

# Coroutines, though none awaits: FastAPI hands a plain function to its thread
# pool, and that hand-off cost a request more than the work it wraps.


def _state(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


async def _resources(request: Request) -> Resources:
    return _state(request)


async def _pool(request: Request) -> asyncpg.Pool:
    return _state(request).pool


async def _valkey(request: Request) -> valkey.Valkey:
    return _state(request).valkey


async def _temporal(request: Request) -> Client:
    return _state(request).temporal


async def _store(request: Request) -> ObjectStore:
    return _state(request).store


async def _settings(request: Request) -> Settings:
    return _state(request).settings


# what counts every forwarded value that is no address, so that a client
# rotating garbage through a trusting proxy still meets one per-address limit
UNPARSED_ADDRESS = "unparsed"


async def _client_address(request: Request) -> str | None:
    # the peer, or what a proxy in TLOUNGE_TRUSTED_PROXIES forwarded, which
    # uvicorn takes as it comes
    if request.client is None:
        return None
    try:
        return str(ipaddress.ip_address(request.client.host))
    except ValueError:
        return UNPARSED_ADDRESS


ResourcesDep = Annotated[Resources, Depends(_resources)]
PoolDep = Annotated[asyncpg.Pool, Depends(_pool)]
ValkeyDep = Annotated[valkey.Valkey, Depends(_valkey)]
TemporalDep = Annotated[Client, Depends(_temporal)]
StoreDep = Annotated[ObjectStore, Depends(_store)]
SettingsDep = Annotated[Settings, Depends(_settings)]
ClientAddressDep = Annotated[str | None, Depends(_client_address)]


# only a name of this shape is echoed back in an error
_SAFE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,39}")


def _query_names(dependant: Dependant) -> frozenset[str]:
    names = {field.alias for field in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return frozenset(names)


# kept on the route itself: an id() would outlive an app built and dropped in tests
_NAMES_ATTRIBUTE = "tlounge_query_names"
_SIGNED_IN_ATTRIBUTE = "tlounge_signed_in_only"
_LAST_GATE_ATTRIBUTE = "tlounge_last_gate"
_GATE_ATTRIBUTE = "tlounge_gate"


def _has_bearer(dependant: Dependant) -> bool:
    if isinstance(dependant.call, HTTPBearer):
        return True
    return any(_has_bearer(sub) for sub in dependant.dependencies)


def _signed_in_only(route: APIRoute) -> bool:
    """Whether the operation answers nobody without a token: it reads one,
    and its document does not offer it to anyone (`{}`)."""
    anyone = {} in (route.openapi_extra or {}).get("security", [])
    return _has_bearer(route.dependant) and not anyone


def gate(call: Any) -> Any:
    """Marks a dependency that lets staff in, by token, role or scope. A route
    behind one has its query names judged after it, so whoever may not act
    hears that first, not how to mend a request that would still be refused."""
    setattr(call, _GATE_ATTRIBUTE, True)
    return call


def _last_gate(dependant: Dependant) -> Any:
    """The gate that runs last: dependencies run before what needs them, and
    in their order. A staff gate inside a role's or a scope's runs first."""
    last = None
    for sub in dependant.dependencies:
        last = _last_gate(sub) or last
    if getattr(dependant.call, _GATE_ATTRIBUTE, False):
        last = dependant.call
    return last


def _route_facts(route: APIRoute) -> frozenset[str]:
    known: frozenset[str] | None = getattr(route, _NAMES_ATTRIBUTE, None)
    if known is None:
        known = _query_names(route.dependant)
        setattr(route, _NAMES_ATTRIBUTE, known)
        setattr(route, _SIGNED_IN_ATTRIBUTE, _signed_in_only(route))
        setattr(route, _LAST_GATE_ATTRIBUTE, _last_gate(route.dependant))
    return known


async def refuse_unknown_query(request: Request) -> None:
    """A query parameter the operation does not read is refused, as an unknown
    body field is: a misspelt filter would otherwise look applied."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.query_params:
        return
    _route_facts(route)
    if getattr(route, _LAST_GATE_ATTRIBUTE) is not None:
        # its last gate calls judge_query once it has let the caller in
        return
    if getattr(route, _SIGNED_IN_ATTRIBUTE) and not request.headers.get(
        "authorization"
    ):
        # its sign-in is missing, which the operation's own 401 says first
        return
    judge_query(request)


def judge_query(request: Request, by: Any = None) -> None:
    """The query's names judged, by the app for a route with no gate, and by
    the route's last gate once it has let the caller in."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.query_params:
        return
    known = _route_facts(route)
    if by is not getattr(route, _LAST_GATE_ATTRIBUTE):
        return
    if not known:
        # nothing there to misspell; a cache-buster (`?v=2`) or a probe's marker passes
        return
    for name in request.query_params:
        if name in known:
            continue
        if not _SAFE_NAME.fullmatch(name):
            raise InvalidQuery("query: a parameter this operation does not take")
        close = difflib.get_close_matches(name, sorted(known), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise InvalidQuery(f"query.{name}: not a parameter of this operation{hint}")
