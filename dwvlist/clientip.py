"""The client's address, as every limiter, the login lockout and the consent record see it.

Behind a reverse proxy the connection comes from the proxy, and the
client's address is in X-Forwarded-For, which anyone can also send. So the
header is read only when the connection itself comes from a trusted proxy
(TRUSTED_PROXIES: addresses or CIDR ranges), and then from the right: each
trusted proxy appends the address it saw, so the right-most entry that is
not one of ours is the first one no trusted proxy can have been fooled
about. What the client wrote further left is ignored.

python-ipware (the library django-ipware is built on) parses the header:
ports, brackets, IPv4-mapped IPv6 and RFC 7239 `for=` forms. Its own
trusted-proxy option matches a fixed number of hops in order, not a set of
ranges, so the walk from the right is done here.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from python_ipware.modern.parsers import parse_ip, split_proxy_chain, unwrap_ipv4_network

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_networks_parse(entries: Iterable[str]) -> tuple[Network, ...]:
    """Return the networks of the TRUSTED_PROXIES entries, or raise ImproperlyConfigured naming the bad one."""
    networks = []
    for entry in entries:
        try:
            networks.append(unwrap_ipv4_network(ipaddress.ip_network(entry.strip(), strict=False)))
        except ValueError:
            raise ImproperlyConfigured(
                f"TRUSTED_PROXIES must be comma-separated IP addresses or CIDR ranges; got {entry!r}"
            ) from None
    return tuple(networks)


@functools.lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    return trusted_networks_parse(entries)


def _trusted(ip, networks: tuple[Network, ...]) -> bool:
    return any(ip.version == net.version and ip in net for net in networks)


def client_ip(request) -> str:
    """Return the client's address: REMOTE_ADDR, or from X-Forwarded-For when REMOTE_ADDR is a trusted proxy."""
    remote_raw = request.META.get("REMOTE_ADDR") or ""
    remote = parse_ip(remote_raw)
    if remote is None:
        return remote_raw[:64]
    networks = _networks(tuple(settings.TRUSTED_PROXIES))
    if not networks or not _trusted(remote, networks):
        return str(remote)
    chain = split_proxy_chain(request.META.get("HTTP_X_FORWARDED_FOR", "")) or []
    for hop in reversed(chain):
        if not _trusted(hop, networks):
            return str(hop)
    # Every hop is one of ours (a request made from inside): the left-most is the origin.
    return str(chain[0]) if chain else str(remote)
