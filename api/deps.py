"""Annotated dependency aliases, so routers name what they need in one word."""

from __future__ import annotations

import ipaddress
from typing import Annotated

import asyncpg
import valkey.asyncio as valkey
from fastapi import Depends, Request
from temporalio.client import Client

from api.objectstore import ObjectStore
from api.resources import Resources
from api.settings import Settings


def _resources(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


def _pool(request: Request) -> asyncpg.Pool:
    return _resources(request).pool


def _valkey(request: Request) -> valkey.Valkey:
    return _resources(request).valkey


def _temporal(request: Request) -> Client:
    return _resources(request).temporal


def _store(request: Request) -> ObjectStore:
    return _resources(request).store


def _settings(request: Request) -> Settings:
    return _resources(request).settings


# what counts every forwarded value that is no address, so that a client
# rotating garbage through a trusting proxy still meets one per-address limit
UNPARSED_ADDRESS = "unparsed"


def _client_address(request: Request) -> str | None:
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
