"""The one exception type of :mod:`labkit.tokenize`, so callers can catch every tokenizer problem at once."""


class TokenizerError(ValueError):
    """Invalid input to a tokenizer: a bad id, a special token in user text, a corrupt vocabulary file.

    The message names the offending value and what to do about it.
    """


class SpecialTokenError(TokenizerError):
    """Text contains a special token's string that the caller did not allow (special-token injection)."""
