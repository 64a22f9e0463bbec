"""One Marketo call, done properly: through the shared limiter, authenticated, classified, retried with backoff.

Every operation of :class:`~shared.marketo.client.MarketoClient` goes through :meth:`MarketoCaller.call`, so the
rules (which codes retry, re-auth once on 601/602, stop on 607 until the quota resets) live in one loop.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from shared.errors import RetryLater
from shared.http.backoff import Backoff
from shared.marketo.auth import MarketoAuth
from shared.marketo.faults import Action, Verdict, classify, to_error
from shared.marketo.limiter import Limiter

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Answer:
    """A successful call: the JSON envelope (``payload``) or, for CSV endpoints, the raw ``text``."""

    payload: dict[str, Any]
    text: str
    attempts: int


def utcnow() -> datetime:
    """Now, in UTC: what a quota reset is reckoned from (tests inject their own)."""
    return datetime.now(UTC)


class MarketoCaller:
    def __init__(
        self,
        http: httpx.Client,
        *,
        base_url: str,
        auth: MarketoAuth,
        limiter: Limiter,
        backoff: Backoff,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utcnow,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._auth = auth
        self._limiter = limiter
        self._backoff = backoff
        self._sleep = sleep
        self._clock = clock
        self._now = now
        self._rand = rand
        self.retries: dict[str, int] = {}

    def url(self, path: str) -> str:
        return self._base_url + path

    def call(
        self,
        method: str,
        path: str,
        *,
        what: str,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        data: Mapping[str, str] | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
        expect_json: bool = True,
    ) -> Answer:
        started = self._clock()
        attempt = 0
        reauthed = False
        while True:
            attempt += 1
            request = self._http.build_request(method, self.url(path), params=params, json=json, data=data, files=files)
            response: httpx.Response | None = None
            try:
                with self._limiter.slot():
                    response = self._http.send(request, auth=self._auth)
                verdict = classify(response, expect_json=expect_json)
            except httpx.TimeoutException as exc:
                verdict = Verdict(Action.RETRY, "timeout", f"no answer in time ({type(exc).__name__})")
            except httpx.TransportError as exc:
                # Only the type: the exception's request may be the identity call, whose URL holds the secret.
                verdict = Verdict(Action.RETRY, "transport", f"transport error ({type(exc).__name__})")
            except RetryLater as exc:  # the identity service hiccupped while fetching a token
                verdict = Verdict(Action.RETRY, exc.code, exc.message)
            if verdict.ok:
                assert response is not None
                return Answer(verdict.payload or {}, "" if expect_json else response.text, attempt)
            self.retries[verdict.code or verdict.action] = self.retries.get(verdict.code or verdict.action, 0) + 1
            if verdict.action is Action.REAUTH and not reauthed:
                reauthed = True
                used = request.headers.get("Authorization", "").removeprefix("Bearer ")
                self._auth.invalidate(used or None)
                log.info("marketo %s: token rejected (%s), re-authenticating once", what, verdict.code)
                continue
            if verdict.retryable:
                delay = self._backoff.delay(attempt, rand=self._rand)
                if self._backoff.allows(attempt, self._clock() - started, delay):
                    log.warning(
                        "marketo %s: %s %s, retry %d in %.2f s", what, verdict.code, verdict.message, attempt, delay
                    )
                    self._sleep(delay)
                    continue
            raise to_error(verdict, what=what, now=self._now()) from None
