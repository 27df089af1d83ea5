"""The per-sender rate limit: GCRA with time passed in (no clocks, no sleeps), its reply."""

import pytest

from chatmail_services.core.failures import Refused
from chatmail_services.core.gcra import RateLimiter
from chatmail_services.filtermail.smtp import reply_for, retry_text

SENDER = "alice@chat.example.org"


def test_a_burst_passes_then_the_next_message_waits_one_interval():
    limiter = RateLimiter(per_minute=60, burst=10)
    assert [limiter.check(SENDER, 100.0) for _ in range(10)] == [(True, 0.0)] * 10
    assert limiter.check(SENDER, 100.0) == (False, pytest.approx(1.0))


def test_allowance_refills_at_the_configured_rate():
    limiter = RateLimiter(per_minute=60, burst=10)
    for _ in range(10):
        limiter.check(SENDER, 0.0)
    assert limiter.check(SENDER, 1.0) == (True, 0.0)
    assert limiter.check(SENDER, 1.0)[0] is False
    assert [limiter.check(SENDER, 4.0)[0] for _ in range(4)] == [True, True, True, False]


def test_idle_sender_gets_a_full_burst_again():
    limiter = RateLimiter(per_minute=60, burst=3)
    for _ in range(3):
        limiter.check(SENDER, 0.0)
    assert [limiter.check(SENDER, 3.0)[0] for _ in range(4)] == [True, True, True, False]


@pytest.mark.parametrize("now, expected", [(0.0, 10.0), (4.0, 6.0), (9.5, 0.5)])
def test_retry_after_is_the_time_until_the_next_message_would_pass(now, expected):
    limiter = RateLimiter(per_minute=6, burst=2)
    limiter.check(SENDER, 0.0)
    limiter.check(SENDER, 0.0)
    allowed, retry_after = limiter.check(SENDER, now)
    assert not allowed and retry_after == pytest.approx(expected)
    assert limiter.check(SENDER, now + retry_after) == (True, 0.0)


def test_refused_messages_do_not_push_the_sender_further_back():
    limiter = RateLimiter(per_minute=60, burst=1)
    limiter.check(SENDER, 0.0)
    for _ in range(100):
        limiter.check(SENDER, 0.5)
    assert limiter.check(SENDER, 1.0) == (True, 0.0)


def test_senders_are_limited_independently_and_case_insensitively():
    limiter = RateLimiter(per_minute=60, burst=1)
    assert limiter.check(SENDER, 0.0)[0]
    assert not limiter.check(SENDER.upper(), 0.0)[0]
    assert limiter.check("bob@chat.example.org", 0.0)[0]


def test_idle_entries_are_pruned():
    limiter = RateLimiter(per_minute=60, burst=10)
    for n in range(50):
        limiter.check(f"user{n}@chat.example.org", 0.0)
    assert len(limiter) == 50
    limiter.check(SENDER, 1000.0)
    assert len(limiter) == 1


def test_senders_still_in_debt_are_kept_by_the_sweep():
    limiter = RateLimiter(per_minute=60, burst=3)
    limiter.check("carol@chat.example.org", 0.0)
    for _ in range(3):
        limiter.check(SENDER, 2.0)
    limiter.check("bob@chat.example.org", 2.0)
    limiter.check("dave@chat.example.org", 3.5)
    assert len(limiter) == 2
    assert [limiter.check(SENDER, 3.5)[0] for _ in range(2)] == [True, False]


def test_table_size_is_capped():
    limiter = RateLimiter(per_minute=60, burst=10, max_entries=3)
    for n in range(100):
        limiter.check(f"user{n}@chat.example.org", 0.0)
        assert len(limiter) <= 3


@pytest.mark.parametrize("kwargs", [{"per_minute": 0}, {"burst": 0}, {"max_entries": 0}])
def test_nonsense_parameters_are_refused(kwargs):
    with pytest.raises(ValueError):
        RateLimiter(**kwargs)


@pytest.mark.parametrize("seconds, text", [
    (0.0, "1 second"), (0.2, "1 second"), (1.0, "1 second"), (1.01, "2 seconds"),
    (59.0, "59 seconds"), (119.0, "119 seconds"), (119.2, "2 minutes"), (3601, "61 minutes"),
])
def test_retry_time_is_human_readable(seconds, text):
    assert retry_text(seconds) == "try again in " + text


def test_rate_limit_reply_text():
    assert str(reply_for(Refused("rate-limited", retry_text(0.4)))) == (
        "450 4.7.1 Rate limit exceeded: too much mail from this sender, try again in 1 second")
    assert reply_for(Refused("rate-limited", retry_text(12.5))).text.endswith(
        "try again in 13 seconds")
