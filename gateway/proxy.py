"""Who the client really is behind a reverse proxy: ``Forwarded`` and ``X-Forwarded-*``.

The headers are honoured only on connections from a configured trusted proxy
(``server.trusted_proxies``: addresses, CIDRs, and ``unix`` for a unix-socket peer); from
anyone else they are ignored, so a client cannot claim another address. Only the family
the proxy sets (``server.forwarded_headers``) is read: proxies append to their own family
and pass the other through as the client sent it, so believing it would let any client
choose its address. The client is the
right-most hop that is not itself a trusted proxy (each proxy appends the address it saw),
and proto and host are taken from the same hop. Values that do not parse (``unknown``,
obfuscated names, a proto other than http/https) leave the connection's own value.

The middleware replaces the request with ``request.clone(remote=…, scheme=…, host=…)``, so
everything downstream (request log, audit rows, cookies' Secure flag, absolute links) sees
the client's view. aiohttp-remotes was considered: its strict tools answer an untrusted
peer with 400 instead of ignoring the headers, know nothing of unix-socket peers, and
handle only one of the two header families each. This module does no I/O and knows no
vendor.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import TypedDict

from aiohttp import hdrs, web

__all__ = ["TrustedProxies", "forwarded_middleware"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_HOST = re.compile(r"(\[([0-9A-Fa-f:.]+)\]|[A-Za-z0-9._-]{1,253})(?::([0-9]{1,5}))?")
_PROTOS = frozenset({"http", "https"})


class TrustedProxies:
    """The parsed ``server.trusted_proxies`` list."""

    def __init__(self, spec: str, headers: str = "x-forwarded") -> None:
        self.rfc7239 = headers == "forwarded"
        entries = [e.strip() for e in spec.split(",") if e.strip()]
        self.unix = "unix" in entries
        self.networks = tuple(ipaddress.ip_network(e, strict=False) for e in entries if e != "unix")

    def __bool__(self) -> bool:
        return self.unix or bool(self.networks)

    def trusts(self, address: _Address | None) -> bool:
        return address is not None and any(address in net for net in self.networks)

    def trusts_peer(self, remote: str | None) -> bool:
        """Whether the connection's peer is a trusted proxy; a unix socket has no address."""
        if not remote:
            return self.unix
        return self.trusts(_parse_address(remote))


def _parse_address(text: str) -> _Address | None:
    """An address from ``X-Forwarded-For`` or a ``for=`` parameter (``[v6]:port``, ``v4:port``)."""
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _valid_host(host: str) -> bool:
    """A ``host[:port]`` that URLs can be built from (yarl refuses a port above 65535)."""
    match = _HOST.fullmatch(host)
    if match is None or (match.group(3) is not None and int(match.group(3)) > 65535):
        return False
    if match.group(2) is not None:
        try:
            ipaddress.IPv6Address(match.group(2))
        except ValueError:
            return False
    return True


def _pick(trusted: TrustedProxies, hops: Sequence[_Address | None]) -> int | None:
    """Index of the client among *hops* (left: farthest), or None when a hop is unreadable."""
    for index in range(len(hops) - 1, -1, -1):
        hop = hops[index]
        if hop is None:
            return None  # a hop we cannot read: nothing to its left can be vouched for
        if not trusted.trusts(hop):
            return index
    return 0 if hops else None  # every hop is a proxy: the farthest is the best we know


class ClientView(TypedDict, total=False):
    """What :meth:`aiohttp.web.BaseRequest.clone` replaces for a request from a trusted proxy."""

    remote: str
    scheme: str
    host: str


def client_view(trusted: TrustedProxies, request: web.BaseRequest) -> ClientView:
    """The ``remote``/``scheme``/``host`` that the forwarding headers establish, if any."""
    headers = request.headers
    found: ClientView = {}
    if trusted.rfc7239:
        elements = request.forwarded
        hops = [_parse_address(e.get("for", "")) for e in elements]
        index = _pick(trusted, hops)
        if index is None:
            return found
        element = elements[index]
        found["remote"] = str(hops[index])
        proto, host = element.get("proto", "").lower(), element.get("host", "")
    else:
        forwarded_for = ",".join(headers.getall(hdrs.X_FORWARDED_FOR, ()))
        if not forwarded_for:
            return found
        hops = [_parse_address(part) for part in forwarded_for.split(",")]
        index = _pick(trusted, hops)
        if index is None:
            return found
        found["remote"] = str(hops[index])
        protos = [p.strip().lower() for p in ",".join(headers.getall(hdrs.X_FORWARDED_PROTO, ())).split(",")
                  if p.strip()]
        hosts = [h.strip() for h in ",".join(headers.getall(hdrs.X_FORWARDED_HOST, ())).split(",") if h.strip()]
        # aligned with the chosen hop when every proxy appended; else the nearest proxy's value
        proto = (protos[index] if len(protos) == len(hops) else protos[-1]) if protos else ""
        host = (hosts[index] if len(hosts) == len(hops) else hosts[-1]) if hosts else ""
    if proto in _PROTOS:
        found["scheme"] = proto
    if host and _valid_host(host):
        found["host"] = host
    return found


def forwarded_middleware(trusted: TrustedProxies):
    """A middleware that applies :func:`client_view` for requests from a trusted proxy."""

    @web.middleware
    async def forwarded(request: web.Request, handler: Handler) -> web.StreamResponse:
        if trusted.trusts_peer(request.remote):
            view = client_view(trusted, request)
            if view:
                request = request.clone(**view)
        return await handler(request)

    return forwarded
