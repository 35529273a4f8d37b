"""Tests of labkit.serve.stop: stop strings end the text and no part of them is ever released."""

import random

import pytest

from labkit.serve.stop import StopMatcher


def _run(pieces: list[str], stop: list[str]) -> tuple[list[str], StopMatcher]:
    matcher = StopMatcher(stop)
    released = []
    for piece in pieces:
        released.append(matcher.feed(piece))
        if matcher.stopped:
            break
    if not matcher.stopped:
        released.append(matcher.flush())
    return released, matcher


def test_stop_split_across_pieces():
    released, matcher = _run(["Hello wo", "r", "ld! Bye"], ["world"])
    assert "".join(released) == "Hello "
    assert matcher.stopped


def test_prefix_held_then_released():
    matcher = StopMatcher(["###"])
    assert matcher.feed("a #") == "a "
    assert matcher.pending == "#"
    assert matcher.feed("#b") == "##b"
    assert not matcher.stopped


def test_held_prefix_released_at_end():
    released, matcher = _run(["abc", "\n"], ["\n\n"])
    assert "".join(released) == "abc\n"
    assert not matcher.stopped


def test_earliest_of_several_stops_wins():
    released, _ = _run(["one two three"], ["three", "two"])
    assert "".join(released) == "one "


def test_stop_at_start():
    released, matcher = _run(["STOP here"], ["STOP"])
    assert released == [""]
    assert matcher.stopped


def test_empty_stop_strings_ignored():
    released, matcher = _run(["abc"], [""])
    assert "".join(released) == "abc"
    assert not matcher.stopped


def test_emitted_counts_released_characters():
    matcher = StopMatcher(["xyz"])
    matcher.feed("abcx")
    assert matcher.emitted == 3
    matcher.feed("q")
    assert matcher.emitted == 5


@pytest.mark.parametrize("seed", range(40))
def test_random_splits_never_leak(seed):
    rng = random.Random(seed)
    alphabet = "ab\n é"
    text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
    stops = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 4))) for _ in range(rng.randint(1, 3))]
    cuts = sorted(rng.sample(range(len(text) + 1), k=min(len(text) + 1, rng.randint(0, 12))))
    pieces = [text[a:b] for a, b in zip([0] + cuts, cuts + [len(text)])]

    released, matcher = _run(pieces, stops)
    found = [text.find(s) for s in stops if s in text]
    expected = text[:min(found)] if found else text
    assert "".join(released) == expected
    assert matcher.stopped == bool(found)
    # Every prefix of the output is a prefix of the expected text, so nothing is taken back.
    so_far = ""
    for piece in released:
        so_far += piece
        assert expected.startswith(so_far)
