"""A small Python client of the StreamFlow API that keeps its token fresh.

``StreamFlowClient`` signs in with a user's password (password grant) or a
system's client credentials, sends ``Authorization: Bearer`` on every
request, refreshes the access token before it expires (at four fifths of
its lifetime, with the refresh token when there is one, else by signing in
again), and on a 401 gets a new token and retries the request once. It is
safe to share between threads: one lock guards the token, and a thread that
finds the token already replaced by another does not fetch a second one.

Example::

    with StreamFlowClient("http://127.0.0.1:8000", username="ada",
                          password="…") as api:
        devices = api.get("/v1/devices").json()
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx

TOKEN_PATH = "/v1/auth/token"
LOGOUT_PATH = "/v1/auth/logout"
#: Share of a token's lifetime after which it is refreshed.
REFRESH_AT = 0.8


class AuthError(Exception):
    """The API refused the credentials or the refresh token.

    Attributes:
        status: the HTTP status of the refusal.
        error: the RFC 6749 ``error`` code (``invalid_grant``, ...).
    """

    def __init__(self, status: int, error: str, description: str) -> None:
        self.status = status
        self.error = error
        super().__init__(f"sign-in refused ({status} {error}): {description}")


@dataclass(frozen=True, slots=True)
class _Token:
    access: str
    refresh: str | None
    refresh_after: float  # on the client's clock


class _TokenAuth(httpx.Auth):
    """The httpx auth flow: add the token, refresh early, retry once on 401."""

    def __init__(self, owner: StreamFlowClient) -> None:
        self._owner = owner

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._owner._token()
        request.headers["Authorization"] = f"Bearer {token.access}"
        response = yield request
        if response.status_code != 401:
            return
        token = self._owner._token(stale=token)
        request.headers["Authorization"] = f"Bearer {token.access}"
        yield request


class StreamFlowClient:
    """A thread-safe API client that signs in and keeps its token fresh.

    Give either ``username`` and ``password`` or ``client_id`` and
    ``client_secret``.

    Args:
        base_url: the API's root, e.g. ``http://127.0.0.1:8000``.
        username: a user's name (password grant).
        password: the user's password.
        client_id: an integration client's id (client credentials grant).
        client_secret: the client's secret.
        scope: ask for fewer scopes than the role grants (space-separated).
        timeout: seconds for each request.
        transport: an httpx transport (e.g. with a ``local_address``).
        clock: monotonic seconds, for the refresh time (tests pass their own).

    Raises:
        ValueError: neither or both kinds of credentials are given.
    """

    def __init__(
        self,
        base_url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        scope: str | None = None,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        person = username is not None and password is not None
        system = client_id is not None and client_secret is not None
        if person == system:
            raise ValueError(
                "expected username and password, or client_id and client_secret"
            )
        self._username = username
        self._password = password
        self._client_id = client_id
        self._client_secret = client_secret
        self._scope = scope
        self._clock = clock

        # The token, and the lock that makes one thread fetch it at a time.
        self._lock = threading.Lock()
        self._current: _Token | None = None
        #: Tokens fetched so far (sign-ins and refreshes), for diagnostics.
        self.token_requests = 0

        self.http = httpx.Client(
            base_url=base_url,
            timeout=timeout,
            transport=transport,
            auth=_TokenAuth(self),
        )

    # -- requests ---------------------------------------------------------

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send a request with the token (see :meth:`httpx.Client.request`)."""
        return self.http.request(method, url, **kwargs)

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        """GET with the token."""
        return self.http.get(url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        """POST with the token."""
        return self.http.post(url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> httpx.Response:
        """PATCH with the token."""
        return self.http.patch(url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        """DELETE with the token."""
        return self.http.delete(url, **kwargs)

    def logout(self) -> None:
        """End the sign-in on the server and forget the token."""
        with self._lock:
            token, self._current = self._current, None
        if token is not None:
            self.http.post(
                LOGOUT_PATH,
                headers={"Authorization": f"Bearer {token.access}"},
                auth=httpx.Auth(),  # no token flow: this token only
            )

    def close(self) -> None:
        """Close the connections."""
        self.http.close()

    def __enter__(self) -> StreamFlowClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- tokens -----------------------------------------------------------

    def _token(self, stale: _Token | None = None) -> _Token:
        """A usable token: the current one, a refreshed one, or a new sign-in.

        ``stale`` is a token the server refused: replace it unless another
        thread did already.
        """
        with self._lock:
            current = self._current
            fresh = current is not None and (
                stale is not None or self._clock() < current.refresh_after
            )
            if current is not None and current is not stale and fresh:
                return current
            self._current = self._fetch(current)
            return self._current

    def _fetch(self, current: _Token | None) -> _Token:
        if current is not None and current.refresh is not None:
            try:
                return self._grant(
                    {"grant_type": "refresh_token", "refresh_token": current.refresh}
                )
            except AuthError:
                pass  # expired or revoked: sign in again
        if self._username is not None:
            form = {
                "grant_type": "password",
                "username": self._username,
                "password": self._password or "",
            }
            return self._grant(form)
        return self._grant(
            {"grant_type": "client_credentials"},
            basic=(self._client_id or "", self._client_secret or ""),
        )

    def _grant(
        self, form: dict[str, str], basic: tuple[str, str] | None = None
    ) -> _Token:
        if self._scope is not None:
            form["scope"] = self._scope
        started = self._clock()
        response = self.http.post(
            TOKEN_PATH,
            data=form,
            auth=httpx.BasicAuth(*basic) if basic else httpx.Auth(),
        )
        self.token_requests += 1
        if response.status_code != 200:
            body = _json(response)
            raise AuthError(
                response.status_code,
                str(body.get("error", "error")),
                str(body.get("error_description", response.text[:200])),
            )
        body = response.json()
        lifetime = float(body.get("expires_in", 60))
        return _Token(
            access=body["access_token"],
            refresh=body.get("refresh_token"),
            refresh_after=started + lifetime * REFRESH_AT,
        )


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
