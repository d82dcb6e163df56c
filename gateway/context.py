"""Typed application keys and per-request facts shared by the middlewares and styles."""

from __future__ import annotations

from aiohttp import web

from gateway.auth import PRINCIPAL, Principal
from gateway.config import Config
from gateway.store import Store

__all__ = ["STORE", "CONFIG", "REQUEST_ID", "principal", "request_id"]

STORE = web.AppKey("store", Store)
CONFIG = web.AppKey("config", Config)
REQUEST_ID = web.RequestKey("request_id", str)


def principal(request: web.Request) -> Principal:
    return request[PRINCIPAL]


def request_id(request: web.Request) -> str:
    return request.get(REQUEST_ID, "")
