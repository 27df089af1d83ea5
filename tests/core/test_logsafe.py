"""Client text in log lines: escaped, bounded; repeated warnings counted, not logged."""

import pytest
from twisted.internet.task import Clock
from twisted.logger import Logger

from chatmail_services.core.logsafe import Repeated, one_line, shown


@pytest.mark.parametrize("value, expected", [
    ("auth", "auth"),
    ("a\nb\rc\td", "a\\nb\\rc\\td"),
    ("nul\x00 esc\x1b del\x7f", "nul\\x00 esc\\x1b del\\x7f"),
    ("back\\slash", "back\\\\slash"),
    ("not utf-8 \udcff", "not utf-8 \\udcff"),
    ("line\u2028separator", "line\\u2028separator"),
    ("caf\u00e9", "caf\u00e9"),
    ("x" * 70, "x" * 64 + "...(+6 characters)"),
    (b"bytes", "b'bytes'"),
])
def test_shown_is_escaped_and_bounded(value, expected):
    assert shown(value) == expected


def test_one_line_escapes_line_breaks_but_keeps_backslashes():
    assert one_line("a\\nb\nc") == "a\\nb\\nc"


def test_repeated_logs_one_line_per_kind_and_interval_and_says_how_many_it_held():
    clock, events = Clock(), []
    log, repeated = Logger(observer=events.append), Repeated(60, clock.seconds)
    assert [repeated.warn(log, "a", "problem") for _ in range(3)] == [True, False, False]
    assert repeated.warn(log, "b", "other problem")  # another kind has its own minute
    clock.advance(60)
    assert repeated.warn(log, "a", "problem")
    assert [e["held"] for e in events] == [0, 0, 2]
