"""An OpenAI-compatible server for the course's GGUF models, with continuous batching on llama.cpp.

>>> from labkit.serve import serve_in_background
>>> with serve_in_background() as server:                                  # doctest: +SKIP
...     reply = server.openai_client().chat.completions.create(
...         model="smollm2", messages=[{"role": "user", "content": "Hi"}], max_tokens=8)

Modules, from the wire down: :mod:`~labkit.serve.app` (routes, SSE), :mod:`~labkit.serve.schemas`
(typed bodies), :mod:`~labkit.serve.engine` (the in-process API), :mod:`~labkit.serve.scheduler`
(continuous batching), :mod:`~labkit.serve.sampling`, :mod:`~labkit.serve.stop`,
:mod:`~labkit.serve.chat_template`, :mod:`~labkit.serve.embeddings`, :mod:`~labkit.serve.llama`
(llama.cpp's C API).
"""

from labkit.serve.background import RunningServer, serve_in_background
from labkit.serve.engine import Delta, Embeddings, Engine, Generation, ModelInfo, Stream, Usage
from labkit.serve.errors import ServeError
from labkit.serve.settings import ServeSettings

__all__ = ["Delta", "Embeddings", "Engine", "Generation", "ModelInfo", "RunningServer", "ServeError",
           "ServeSettings", "Stream", "Usage", "serve_in_background"]
