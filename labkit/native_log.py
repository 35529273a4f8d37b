"""llama.cpp's own log lines, routed into Python logging, and a lock for output redirection.

llama.cpp prints load-time notes ("using full-size SWA cache", "control-looking token") straight
to standard error. In a notebook they become stderr outputs that fail a strict book build, and in
a terminal they bury labkit's own messages. :func:`import_llama_cpp` replaces llama-cpp-python's
log callback with one that sends every line to the ``labkit.llama_cpp`` logger: errors at ERROR,
everything else at DEBUG (shown with ``labkit -v``).

``llama_cpp.Llama(verbose=False)`` also silences loading by pointing file descriptors 1 and 2 at
/dev/null and back. Two threads doing that at once can leave standard output pointing at
/dev/null for good, so every such call in labkit takes :data:`REDIRECT_LOCK` first.

>>> llama_cpp = import_llama_cpp()                                  # doctest: +SKIP
>>> with REDIRECT_LOCK:                                             # doctest: +SKIP
...     llm = llama_cpp.Llama(model_path, verbose=False)
"""

from __future__ import annotations

import ctypes
import logging
import threading

log = logging.getLogger("labkit.llama_cpp")

REDIRECT_LOCK = threading.RLock()

# ggml_log_level in the ggml.h vendored by llama-cpp-python 0.3.36 (DEBUG 1, INFO 2, WARN 3, ERROR 4).
# llama-cpp-python's own callback still assumes an older order in which 3 meant ERROR, which is
# why its verbose=False lets llama.cpp's warnings through.
_GGML_LOG_LEVEL_ERROR = 4

# The ctypes callback must stay referenced for as long as llama.cpp may call it.
_installed_callback = None


def import_llama_cpp():
    """Import ``llama_cpp`` with its log routed into Python logging, and return the module."""
    global _installed_callback
    import llama_cpp

    with REDIRECT_LOCK:
        if _installed_callback is None:

            @llama_cpp.llama_log_callback
            def forward(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
                message = text.decode("utf-8", "replace").rstrip()
                if message:
                    log.log(logging.ERROR if level == _GGML_LOG_LEVEL_ERROR else logging.DEBUG,
                            "%s", message)

            llama_cpp.llama_log_set(forward, ctypes.c_void_p(0))
            _installed_callback = forward
    return llama_cpp
