"""Stop strings in a token stream: end the text where one begins, and never emit any part of it.

A stop string can arrive split over several tokens ("\\n\\n" as "\\n" + "\\n", or "END" as "EN" +
"D"). Text that could still turn out to be the start of a stop string is held back until the next
token settles it, so not even a prefix of a stop string leaks into a stream.

>>> matcher = StopMatcher(["END"])
>>> matcher.feed("It was the EN")
'It was the '
>>> matcher.feed("D of it")
''
>>> matcher.stopped
True
>>> matcher = StopMatcher(["END"])
>>> matcher.feed("EN") + matcher.feed("TRY") + matcher.flush()
'ENTRY'
"""

from __future__ import annotations


class StopMatcher:
    """Cut a growing text at the first stop string, holding back possible stop-string prefixes."""

    def __init__(self, stop: list[str] | None = None):
        self.stop = [s for s in (stop or []) if s]
        self.stopped = False
        self.emitted = 0        # characters released so far
        self._pending = ""      # characters held back: they may start a stop string

    def feed(self, text: str) -> str:
        """Add newly decoded text and return the part that can safely be released."""
        if self.stopped:
            return ""
        buffer = self._pending + text

        # Only the held-back text and the new text need searching: released text was never the
        # start of a stop string, or it would have been held back.
        cut = min((i for i in (buffer.find(s) for s in self.stop) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            self._pending = ""
            return self._release(buffer[:cut])

        hold = self._held_suffix(buffer)
        self._pending = buffer[len(buffer) - hold:]
        return self._release(buffer[:len(buffer) - hold])

    def flush(self) -> str:
        """Release what was held back, because the stream ended without a stop string."""
        text, self._pending = self._pending, ""
        return self._release(text)

    @property
    def pending(self) -> str:
        """Text held back because it may be the start of a stop string."""
        return self._pending

    def _release(self, text: str) -> str:
        self.emitted += len(text)
        return text

    def _held_suffix(self, buffer: str) -> int:
        """Return the length of the longest end of ``buffer`` that begins some stop string."""
        longest = 0
        for stop in self.stop:
            for size in range(min(len(stop) - 1, len(buffer)), longest, -1):
                if buffer.endswith(stop[:size]):
                    longest = size
                    break
        return longest
