"""Streaming detokenization: turn token byte pieces into text without ever emitting half a character.

A byte-level BPE token can end in the middle of a UTF-8 character ("é" is two bytes and may be
split across two tokens). Decoding each piece on its own would print U+FFFD replacement characters
in a stream where the whole text is valid. This decoder keeps an incomplete sequence back until
the next piece completes it.

>>> decoder = IncrementalDecoder()
>>> decoder.decode(b"caf\\xc3")        # the first byte of "é" is held back
'caf'
>>> decoder.decode(b"\\xa9!")
'é!'
>>> decoder.flush()
''

Policy for invalid UTF-8: bytes that can never form a character are replaced by U+FFFD as soon as
that is certain, and a sequence still incomplete at :meth:`flush` becomes one U+FFFD.
"""

from __future__ import annotations

import codecs


class IncrementalDecoder:
    """Decode a stream of byte pieces to text, holding back incomplete UTF-8 sequences."""

    def __init__(self, errors: str = "replace"):
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors=errors)

    def decode(self, piece: bytes) -> str:
        """Add ``piece`` and return the text that is now complete (possibly empty)."""
        return self._decoder.decode(piece, final=False)

    def flush(self) -> str:
        """Return what is left at the end of the stream and reset the decoder."""
        text = self._decoder.decode(b"", final=True)
        self._decoder.reset()
        return text

    @property
    def pending(self) -> bytes:
        """Bytes held back because they may start a character that is not complete yet."""
        return self._decoder.getstate()[0]
