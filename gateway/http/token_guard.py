"""Failed token requests throttled per client id and per source address (R-AU-11).

Every attempt takes one token from its client id's bucket and one from its address's before the
secret is checked, and gives both back if it succeeds: so failures, and attempts still being
checked, count; a burst of guesses, concurrent ones included, meets a 429 (with Retry-After)
before it costs more scrypt work. Unknown client ids have buckets like known ones. A legitimate
client whose id is under attack waits too: the price of not checking a secret for free.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web

from gateway.errors import InvalidClient, TokenAttemptsThrottled
from gateway.http.keys import RUNTIME
from gateway.http.peers import source_address
from gateway.http.ratelimit import RateLimiter
from gateway.settings import Settings


class TokenGuard:
    def __init__(self, settings: Settings) -> None:
        self.per_client, self.per_address = settings.token_failures_per_client, settings.token_failures_per_address
        self.limiter = RateLimiter(settings.token_failures_per_minute / 60, self.per_client)
        self.proxies = settings.proxies

    def _keys(self, client_id: str, address: str) -> tuple[tuple[tuple[str, str], int], ...]:
        return ((("client", client_id), self.per_client), (("address", address), self.per_address))

    @contextmanager
    def attempt(self, client_id: str, address: str) -> Iterator[None]:
        """The span of one attempt: refused at once when either allowance is spent; counted as a
        failure if the block raises InvalidClient, given back if it returns."""
        taken: list[tuple[tuple[str, str], int]] = []
        for key, burst in self._keys(client_id, address):
            decision = self.limiter.take(key, burst=burst)
            if not decision.allowed:
                for done, size in taken:
                    self.limiter.give_back(done, size)
                raise TokenAttemptsThrottled(decision.reset_seconds)
            taken.append((key, burst))
        try:
            yield
        except InvalidClient:
            raise
        except BaseException:
            self._give_back(taken)
            raise
        self._give_back(taken)

    def _give_back(self, taken: list[tuple[tuple[str, str], int]]) -> None:
        for key, burst in taken:
            self.limiter.give_back(key, burst)


TOKEN_GUARD = web.AppKey("token_guard", TokenGuard)


def setup_token_guard(app: web.Application, settings: Settings) -> None:
    app[TOKEN_GUARD] = TokenGuard(settings)


@contextmanager
def token_attempt(request: web.Request, client_id: str) -> Iterator[None]:
    guard = request.app[TOKEN_GUARD]
    try:
        with guard.attempt(client_id, source_address(request, guard.proxies)):
            yield
    except TokenAttemptsThrottled:
        request.app[RUNTIME].metrics.rate_limited()
        raise
