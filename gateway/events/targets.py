"""Where webhooks may be sent: the guard against a subscription that makes taskgate call
inside its own network (SSRF).

A target is an ``http`` or ``https`` URL whose host resolves only to addresses the policy
allows. By default refused: loopback, link-local (which holds the cloud metadata address
169.254.169.254), unspecified, multicast and reserved addresses, the known metadata
addresses, and private ranges unless ``webhooks.allow_private``; an address or CIDR in
``webhooks.allow_targets`` is allowed whatever it is. Every address a name resolves to
is checked, when the subscription is made (a clear refusal then) and again at every
delivery: :class:`GuardedResolver` is the outbound client's resolver, so the address
connected to is one that was checked (a name that resolves to a public address at
creation and to 127.0.0.1 later, DNS rebinding, is refused at delivery). It decides, it
does not send anything.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from gateway.config import WebhooksConfig

__all__ = ["TargetRefused", "TargetPolicy", "GuardedResolver"]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
#: metadata services outside link-local (AWS's IPv6 one, Alibaba's, Oracle's legacy one)
_METADATA = frozenset(ipaddress.ip_address(a) for a in ("fd00:ec2::254", "100.100.100.200", "192.0.0.192"))
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT: private in practice


#: NAT64's well-known prefix: its last 32 bits are the IPv4 address a translator connects to
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _embedded(address: Address) -> Address:
    """The IPv4 address an IPv6 one stands for, and is judged as: IPv4-mapped
    (``::ffff:127.0.0.1``), 6to4 (``2002:7f00:1::``) or NAT64 (``64:ff9b::7f00:1``); else
    *address* itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        return address.ipv4_mapped or address.sixtofour or address
    return address


class TargetRefused(OSError):
    """A target the policy refuses; the message says which address and why."""


class TargetPolicy:
    def __init__(self, config: WebhooksConfig) -> None:
        self.allow = tuple(ipaddress.ip_network(e.strip(), strict=False)
                           for e in config.allow_targets.split(",") if e.strip())
        self.allow_private = config.allow_private

    def refusal(self, address: Address) -> str | None:
        """Why *address* may not be called, or None."""
        address = _embedded(address)
        if any(address in net for net in self.allow if net.version == address.version):
            return None
        if address in _METADATA:
            return "a cloud metadata address"
        for test, what in ((address.is_loopback, "a loopback address"),
                           (address.is_link_local, "a link-local address (cloud metadata lives there)"),
                           (address.is_unspecified, "the unspecified address"),
                           (address.is_multicast, "a multicast address"),
                           (address.is_reserved, "a reserved address")):
            if test:
                return what
        if (not address.is_global or address in _SHARED) and not self.allow_private:
            return "a private address (webhooks.allow_private is off)"
        return None

    def check_address(self, host: str, address: str) -> None:
        why = self.refusal(ipaddress.ip_address(address.split("%", 1)[0]))
        if why is not None:
            raise TargetRefused(f"the target host {host!r} resolves to {address}, {why}; "
                                "webhooks.allow_targets lists the addresses allowed anyway")

    def split(self, url: Any) -> tuple[str, int]:
        """The host and port of *url*; TargetRefused for anything but an absolute http(s) URL."""
        if not isinstance(url, str) or len(url) > 2048:
            raise TargetRefused("the target must be an http or https URL of at most 2048 characters")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise TargetRefused(f"the target {url[:100]!r} is not a valid URL: {exc}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TargetRefused(f"the target {url[:100]!r} must be an absolute http or https URL")
        if parts.username is not None or parts.password is not None:
            raise TargetRefused("the target URL must not carry credentials; use the subscription's authentication")
        return parts.hostname, port or (443 if parts.scheme == "https" else 80)

    def literal(self, url: str) -> None:
        """Check a target whose host is an address (no resolver runs for those)."""
        host, _ = self.split(url)
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return
        self.check_address(host, host)

    async def check(self, url: Any) -> None:
        """Resolve the target's host and check every address; TargetRefused with the reason."""
        host, port = self.split(url)
        try:
            ipaddress.ip_address(host)
            self.check_address(host, host)
            return
        except ValueError:
            pass
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), 10)
        except (OSError, TimeoutError) as exc:
            raise TargetRefused(f"the target host {host!r} does not resolve: {exc}") from None
        except UnicodeError:  # the IDNA codec: an empty label ("a..b") or one over 63 characters
            raise TargetRefused(f"the target host {host!r} is not a valid host name") from None
        for *_, sockaddr in infos:
            self.check_address(host, str(sockaddr[0]))


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver, refusing a host if any address it resolves to is refused."""

    def __init__(self, policy: TargetPolicy) -> None:
        self._policy = policy
        self._inner = ThreadedResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        for item in found:
            self._policy.check_address(host, item["host"])
        return found

    async def close(self) -> None:
        await self._inner.close()
