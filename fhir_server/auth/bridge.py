"""Running authlib's synchronous server code against our async store.

The routes call authlib in a worker thread (`anyio.to_thread`); its storage
hooks come back to the event loop with `wait_for`. Requests reach authlib as
`StarletteOAuth2Request`s built from what the route already read.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import anyio.from_thread
from authlib.oauth2.rfc6749 import (
    OAuth2Request,
)
from authlib.oauth2.rfc6749.requests import OAuth2Payload

T = TypeVar("T")


def wait_for(fn: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
    """Run a store coroutine from authlib's worker thread on the event loop."""
    return anyio.from_thread.run(fn, *args)


# -- requests ------------------------------------------------------------------


class FormPayload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._pairs = pairs

    @property
    def data(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, value in self._pairs:
            out.setdefault(key, value)
        return out

    @property
    def datalist(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for key, value in self._pairs:
            out.setdefault(key, []).append(value)
        return out


class StarletteOAuth2Request(OAuth2Request):  # type: ignore[misc]
    """An authlib request from what the route already read: query and form merged."""

    def __init__(
        self,
        method: str,
        uri: str,
        headers: Any,
        query: list[tuple[str, str]],
        form: list[tuple[str, str]],
    ) -> None:
        super().__init__(method=method, uri=uri, headers=headers)
        self._query = FormPayload(query).data
        self._form = FormPayload(form).data
        self.payload = FormPayload(query + form)

    @property
    def args(self) -> dict[str, str]:
        return self._query

    @property
    def form(self) -> dict[str, str]:
        return self._form
