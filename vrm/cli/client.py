"""A small synchronous client for the admin API of the node running in a home.

It finds the node through ``node.json`` (written at start) or the configured
admin port, and turns JSON errors back into ``vrm.errors`` exceptions.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

from vrm.errors import NodeError, NotRunning, error_for_code
from vrm.node.home import Home

__all__ = ["AdminClient"]

#: A node on loopback answers in milliseconds; 15 s means it is wedged, not slow.
TIMEOUT_S = 15.0


class AdminClient:
    def __init__(self, home: Home) -> None:
        home.require()
        self.home = home
        runtime = home.read_runtime()
        if runtime is not None:
            self.base = runtime.admin_url
        else:
            self.base = f"http://127.0.0.1:{home.config().admin_port}"
        self._token = home.admin_token()

    def get(self, path: str, *, timeout: float = TIMEOUT_S, **query: Any) -> Any:
        """GET ``path``; pass a longer ``timeout`` for calls that wait server-side."""
        return self._call("GET", path, None, query, timeout)

    def post(
        self, path: str, body: dict[str, Any] | None = None, *, timeout: float = TIMEOUT_S
    ) -> Any:
        return self._call("POST", path, body or {}, {}, timeout)

    def _request(
        self, method: str, path: str, body: Any, query: dict[str, Any]
    ) -> urllib.request.Request:
        params = {k: v for k, v in query.items() if v is not None}
        url = self.base + path + (("?" + urlencode(params)) if params else "")
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self._token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        return req

    def _call(
        self, method: str, path: str, body: Any, query: dict[str, Any], timeout: float
    ) -> Any:
        req = self._request(method, path, body, query)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise _decode_error(exc) from None
        except TimeoutError as exc:
            raise NodeError(
                f"the node at {self.base} did not answer within {timeout:.0f} s"
            ) from exc
        except (urllib.error.URLError, ConnectionError) as exc:
            raise NotRunning(
                f"no node answers at {self.base} for {self.home.path}: start it with `vrm serve`"
            ) from exc

    def stream(self, path: str) -> Iterator[dict[str, Any]]:
        """Subscribe to server-sent events at ``path`` now; iterate to read them.

        The subscription exists when this returns, so nothing published after the
        call is missed (callers list history afterwards and de-duplicate by id).
        """
        req = self._request("GET", path, None, {})
        try:
            resp = urllib.request.urlopen(req, timeout=None)
        except urllib.error.HTTPError as exc:
            raise _decode_error(exc) from None
        except (urllib.error.URLError, ConnectionError) as exc:
            raise NotRunning(f"no node answers at {self.base}: start it with `vrm serve`") from exc
        return _events(resp)

    @staticmethod
    def peer_path(peer: str) -> str:
        return quote(peer, safe="")


def _events(resp: Any) -> Iterator[dict[str, Any]]:
    with resp:
        try:
            for raw in resp:
                line = raw.decode().rstrip("\n")
                if line.startswith("data: "):
                    yield json.loads(line[6:])
        except (ConnectionError, http.client.IncompleteRead):
            return  # the node stopped; the stream simply ends


def _decode_error(exc: urllib.error.HTTPError) -> Exception:
    try:
        data = json.loads(exc.read())
        return error_for_code(str(data["code"]), str(data["error"]))
    except (ValueError, KeyError, TypeError):
        return NodeError(f"admin API answered HTTP {exc.code}")
