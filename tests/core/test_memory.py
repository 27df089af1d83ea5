"""glibc's malloc: the arena cap and the trim after big messages."""

from twisted.internet.task import Clock

from chatmail_services.core import memory


def test_glibc_takes_the_arena_cap():
    assert memory.limit_arenas(2) is True  # Debian: glibc


def test_many_big_messages_make_one_trim_after_the_delay():
    clock, trims = Clock(), []
    trimmer = memory.Trimmer(clock, lambda: trims.append(clock.seconds()))
    trimmer.soon()
    clock.advance(memory.TRIM_DELAY / 2)
    trimmer.soon()
    assert trims == []
    clock.advance(memory.TRIM_DELAY / 2)
    assert trims == [memory.TRIM_DELAY]
    trimmer.soon()
    clock.advance(memory.TRIM_DELAY)
    assert len(trims) == 2
