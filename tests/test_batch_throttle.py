"""The batch's request limiter (mspbill.batch.throttle), on a fake clock: the token bucket never lets
more than its rate (plus its small burst) through in any second, slows down after a 429 and
recovers, stops waiting when the run is cancelled; the throttled gateway takes a token per call."""

from __future__ import annotations

import bisect
import math
import threading
from pathlib import Path

import pytest

from mspbill.batch.throttle import (
    Cancelled,
    ThrottledGateway,
    TokenBucket,
    effective_rate,
    rate_limit,
)
from mspbill.payments.gateway import ProcessorMode
from mspbill.payments.sandbox import SandboxConfig, SandboxGateway


class FakeTime:
    """A clock that moves only when somebody sleeps (thread-safe)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.lock = threading.Lock()
        self.slept: list[float] = []

    def clock(self) -> float:
        with self.lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0, "the bucket must never sleep for nothing (a busy loop)"
        with self.lock:
            # At least a nanosecond: a float clock near 1000 would swallow a wait of 1e-16 s
            # (what is left of a token after rounding), where a real clock always moves on.
            self.now += max(seconds, 1e-9)
            self.slept.append(seconds)


def _bucket(rate: float, fake: FakeTime, **kwargs: float) -> TokenBucket:
    return TokenBucket(rate, clock=fake.clock, sleep=fake.sleep, **kwargs)


def _max_in_any_second(times: list[float]) -> int:
    """The most acquisitions in any closed one-second window [t, t + 1]."""
    ordered = sorted(times)
    return max(bisect.bisect_right(ordered, t + 1.0 + 1e-9) - i for i, t in enumerate(ordered))


def _take(bucket: TokenBucket, fake: FakeTime, count: int) -> list[float]:
    times = []
    for _ in range(count):
        bucket.acquire()
        times.append(fake.clock())
    return times


@pytest.mark.parametrize("rate", [0.5, 1.0, 4.5, 22.5, 90.0])
def test_no_second_sees_more_than_the_rate_and_the_burst_over_a_long_run(rate: float) -> None:
    fake = FakeTime()
    bucket = _bucket(rate, fake)
    count = int(rate * 120) + 5
    times = _take(bucket, fake, count)
    assert bucket.acquired == count
    assert bucket.capacity == max(1.0, math.floor(rate / 10))
    assert _max_in_any_second(times) <= math.floor(rate + bucket.capacity + 1e-9)
    # ... and it is not slower than the rate either: `count` tokens in about count / rate seconds.
    elapsed = times[-1] - times[0]
    assert elapsed <= (count - bucket.capacity) / rate + 0.01
    assert bucket.waited_seconds > 0


@pytest.mark.parametrize("limit", [1, 2, 5, 25, 100])
def test_with_the_default_margin_no_second_exceeds_the_processors_limit(limit: int) -> None:
    fake = FakeTime()
    bucket = _bucket(effective_rate(limit, 10), fake)
    assert _max_in_any_second(_take(bucket, fake, limit * 30)) <= limit


def test_an_explicit_burst_is_the_most_taken_at_once() -> None:
    fake = FakeTime()
    bucket = _bucket(10, fake, burst=4)
    times = _take(bucket, fake, 4)
    assert times == [1000.0] * 4 and fake.slept == []
    bucket.acquire()
    assert fake.clock() > 1000.0


def test_threads_sharing_the_bucket_never_take_more_than_it_holds() -> None:
    fake = FakeTime()
    bucket = _bucket(20, fake)
    times: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(100):
            bucket.acquire()
            with lock:
                times.append(fake.clock())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(times) == 800 == bucket.acquired
    # Tokens handed out can never exceed what the clock has paid for.
    assert len(times) <= bucket.capacity + 20 * (fake.clock() - 1000.0) + 1e-6


def test_slow_down_halves_the_rate_then_it_recovers() -> None:
    fake = FakeTime()
    bucket = _bucket(20, fake)
    _take(bucket, fake, 40)
    bucket.slow_down(seconds=10)
    assert bucket.rate == 10
    start = fake.clock()
    slow = [t for t in _take(bucket, fake, 150) if t < start + 10]
    # At half the rate, and the burst it had is gone: about 10 a second for 10 seconds.
    assert 90 <= len(slow) <= 10 * 10 + 1
    assert _max_in_any_second(slow) <= 10 + 1
    assert bucket.rate == 20  # recovered once the 10 seconds were over
    after = [t for t in _take(bucket, fake, 200) if t >= start + 11]
    assert _max_in_any_second(after) > 10


def test_slow_down_twice_halves_twice_but_never_below_one_a_second() -> None:
    fake = FakeTime()
    bucket = _bucket(8, fake)
    bucket.slow_down()
    bucket.slow_down()
    assert bucket.rate == 2
    for _ in range(5):
        bucket.slow_down()
    assert bucket.rate == 1


@pytest.mark.parametrize("rate", [0.5, 1.0, 1.5])
def test_slow_down_of_a_slow_bucket_slows_it_and_it_comes_back_to_its_own_rate(rate: float) -> None:
    """A bucket already under one request a second must not be *sped up* by a 429."""
    fake = FakeTime()
    bucket = _bucket(rate, fake)
    bucket.slow_down(seconds=10)
    assert bucket.rate < rate
    fake.sleep(11)
    bucket.acquire()
    assert bucket.rate == rate


def test_acquire_raises_cancelled_when_the_run_is_told_to_stop() -> None:
    fake = FakeTime()
    bucket = _bucket(1, fake)
    stop = threading.Event()
    bucket.acquire(stop)  # the one token it holds
    stop.set()
    with pytest.raises(Cancelled):
        bucket.acquire(stop)
    assert bucket.acquired == 1


def test_a_wait_is_cut_short_when_stop_is_set_meanwhile() -> None:
    """Cancel while a worker waits for a token (the wait is cut in slices of at most 0.25 s)."""
    fake = FakeTime()
    stop = threading.Event()

    def sleep(seconds: float) -> None:
        fake.sleep(seconds)
        stop.set()  # the office clicked Cancel during this slice

    bucket = TokenBucket(0.5, clock=fake.clock, sleep=sleep)
    bucket.acquire(stop)
    with pytest.raises(Cancelled):
        bucket.acquire(stop)
    assert fake.slept == [0.25]


def test_a_rate_of_zero_is_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(0)


# --- the throttled gateway -------------------------------------------------------------


class RecordingGateway:
    mode = ProcessorMode.TEST
    config = "not callable"

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple, dict]] = []

    def charge(self, *args: object, **kwargs: object) -> str:
        self.calls.append(("charge", args, kwargs))
        return "charged"

    def get_charge(self, intent_id: str) -> str:
        self.calls.append(("get_charge", (intent_id,), {}))
        return "found"


def test_the_throttled_gateway_takes_one_token_per_call_and_passes_everything_through() -> None:
    fake = FakeTime()
    bucket = _bucket(2, fake)
    inner = RecordingGateway()
    gateway = ThrottledGateway(inner, bucket)  # type: ignore[arg-type]
    assert gateway.mode is ProcessorMode.TEST and gateway.inner is inner
    assert gateway.config == "not callable"
    assert bucket.acquired == 0  # reading the mode or a setting is not a call
    assert gateway.charge("req", key="k") == "charged"
    assert gateway.get_charge("pi_1") == "found"
    assert gateway.charge("req2") == "charged"
    assert bucket.acquired == 3
    assert inner.calls == [("charge", ("req",), {"key": "k"}), ("get_charge", ("pi_1",), {}),
                           ("charge", ("req2",), {})]
    assert fake.clock() > 1000.0  # the third call waited for its token


def test_the_throttled_gateway_does_not_call_through_once_stopped() -> None:
    fake = FakeTime()
    bucket = _bucket(1, fake)
    stop = threading.Event()
    inner = RecordingGateway()
    gateway = ThrottledGateway(inner, bucket, stop)  # type: ignore[arg-type]
    gateway.charge("first")
    stop.set()
    with pytest.raises(Cancelled):
        gateway.charge("second")
    assert [c[1] for c in inner.calls] == [("first",)]


def test_the_throttled_sandbox_is_still_the_sandbox(tmp_path: Path) -> None:
    fake = FakeTime()
    sandbox = SandboxGateway(tmp_path / "ledger.sqlite3", SandboxConfig(rate_limit_per_second=40))
    gateway = ThrottledGateway(sandbox, _bucket(5, fake))
    assert gateway.mode is ProcessorMode.SANDBOX
    assert gateway.account().account_id == "acct_sandbox"
    assert gateway.bucket.acquired == 1


# --- the limits ------------------------------------------------------------------------


def test_the_limit_follows_the_mode_and_the_sandbox_declares_its_own(tmp_path: Path) -> None:
    assert rate_limit(ProcessorMode.LIVE, 25, 100) == 100
    assert rate_limit(ProcessorMode.TEST, 25, 100) == 25
    assert rate_limit(ProcessorMode.SANDBOX, 25, 100) == 25
    limited = SandboxGateway(tmp_path / "a.sqlite3", SandboxConfig(rate_limit_per_second=40))
    unlimited = SandboxGateway(tmp_path / "b.sqlite3")
    assert rate_limit(ProcessorMode.SANDBOX, 25, 100, limited) == 40
    assert rate_limit(ProcessorMode.SANDBOX, 25, 100, unlimited) == 25
    # A live key is never governed by a sandbox setting.
    assert rate_limit(ProcessorMode.LIVE, 25, 100, limited) == 100


def test_the_effective_rate_is_the_limit_less_the_margin() -> None:
    assert effective_rate(100, 10) == 90
    assert effective_rate(25, 10) == 22.5
    assert effective_rate(25, 0) == 25
    assert effective_rate(1, 90) == 0.5  # never slower than one request every two seconds
