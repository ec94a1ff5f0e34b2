"""Where this node can be reached: the bound peer port, LAN addresses, public URLs.

The runtime owns it; discovery tells it the machine's addresses and the public URLs
the owner set (``vrm endpoint set``), and everything that advertises the node asks
it for ``endpoints()``.
"""

from __future__ import annotations

from collections.abc import Sequence

from vrm.node.config import NodeConfig

__all__ = ["WILDCARD_HOSTS", "Addresses"]

#: Listening on one of these means "every interface": the endpoints are then the
#: machine's own addresses, not the wildcard.
WILDCARD_HOSTS = ("0.0.0.0", "::", "")


class Addresses:
    def __init__(self, config: NodeConfig) -> None:
        self.listen_host = config.listen_host
        self.public_urls: tuple[str, ...] = tuple(config.public_urls)
        self._tls = bool(config.tls_cert)
        #: this machine's LAN addresses, for endpoints when listening on all
        #: interfaces (set by discovery; empty means 127.0.0.1)
        self.host_addresses: tuple[str, ...] = ()
        self.peer_port = 0

    @property
    def listens_everywhere(self) -> bool:
        return self.listen_host in WILDCARD_HOSTS

    def set_host_addresses(self, addresses: Sequence[str]) -> None:
        self.host_addresses = tuple(addresses)

    def set_public_urls(self, urls: Sequence[str]) -> None:
        self.public_urls = tuple(urls)

    def endpoints(self) -> Sequence[str]:
        if self.public_urls:
            return self.public_urls
        hosts: Sequence[str] = (self.listen_host,)
        if self.listens_everywhere:
            hosts = self.host_addresses or ("127.0.0.1",)
        scheme = "https" if self._tls else "http"
        return tuple(f"{scheme}://{f'[{h}]' if ':' in h else h}:{self.peer_port}" for h in hosts)
