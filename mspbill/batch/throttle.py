"""Staying under the processor's request limit: a token bucket shared by the batch's threads.

Stripe allows 100 requests a second in live mode and 25 in test mode and answers
429 above that.  Every call the batch makes goes through `ThrottledGateway`,
which takes a token first.  The bucket refills at the limit less a margin and
holds at most a tenth of a second's worth, so no one-second window sees more
than the limit.  A 429 (another program using the same key, say) slows the
bucket down for a while.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

from mspbill.payments.gateway import Gateway, ProcessorMode


class Cancelled(Exception):
    """Raised by `TokenBucket.acquire` when the run was told to stop."""


class TokenBucket:
    def __init__(self, rate_per_second: float, *, burst: float | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        if rate_per_second <= 0:
            raise ValueError("rate must be positive")
        self.base_rate = float(rate_per_second)
        self.rate = self.base_rate
        self.capacity = burst if burst is not None else max(1.0, math.floor(self.base_rate / 10))
        self._tokens = self.capacity
        self._clock, self._sleep = clock, sleep
        self._last = clock()
        self._lock = threading.Lock()
        self._slow_until = 0.0
        self.waited_seconds = 0.0
        self.acquired = 0

    def _refill(self, now: float) -> None:
        if now >= self._slow_until and self.rate < self.base_rate:
            self.rate = self.base_rate
        self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now

    def acquire(self, stop: threading.Event | None = None) -> None:
        """Wait for a token (or until `stop` is set: `Cancelled`)."""
        while True:
            with self._lock:
                now = self._clock()
                self._refill(now)
                if self._tokens >= 1:
                    self._tokens -= 1
                    self.acquired += 1
                    return
                wait = (1 - self._tokens) / self.rate
            if stop is not None and stop.is_set():
                raise Cancelled()
            self.waited_seconds += wait
            self._sleep(min(wait, 0.25))

    def slow_down(self, seconds: float = 10.0) -> None:
        """A 429 came back: half the rate for `seconds`, and no tokens for a moment."""
        with self._lock:
            now = self._clock()
            self._refill(now)
            # Never below one a second after repeated 429s -- unless the bucket's own rate is
            # already that slow: max(1.0, …) alone sped a 0.5/s bucket up to 1/s, for good.
            self.rate = max(min(1.0, self.base_rate / 2), self.rate / 2)
            self._tokens = min(self._tokens, 0.0)
            self._slow_until = now + seconds


def rate_limit(mode: ProcessorMode, limit_test: int, limit_live: int, gateway: Gateway | None = None) -> int:
    """The processor's requests per second for `mode`; the sandbox declares its own when configured."""
    if mode is ProcessorMode.LIVE:
        return limit_live
    if mode is ProcessorMode.SANDBOX and gateway is not None:
        config = getattr(gateway, "config", None)
        declared = getattr(config, "rate_limit_per_second", None)
        if declared:
            return int(declared)
    return limit_test


def effective_rate(limit: int, margin_percent: int) -> float:
    return max(0.5, limit * (100 - margin_percent) / 100)


class ThrottledGateway:
    """The gateway with a token taken before every call (a `Gateway` itself)."""

    def __init__(self, gateway: Gateway, bucket: TokenBucket, stop: threading.Event | None = None):
        self._gateway, self.bucket, self._stop = gateway, bucket, stop

    @property
    def mode(self) -> ProcessorMode:
        return self._gateway.mode

    @property
    def inner(self) -> Gateway:
        return self._gateway

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._gateway, name)
        if not callable(attr):
            return attr

        def throttled(*args: Any, **kwargs: Any) -> Any:
            self.bucket.acquire(self._stop)
            return attr(*args, **kwargs)

        return throttled
