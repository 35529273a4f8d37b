"""Render chat messages into the exact prompt text a model reads, with its Jinja chat template.

A chat request is billed for the prompt the template builds, not only for the message texts:
role headers, end-of-turn markers and (for Llama 3.x) a system block with dates all add tokens.
Templates come from llama.cpp's collection (``labkit.assets.chat_template_path``), plus two
built-in formats: ``"chatml"`` (``<|im_start|>role ... <|im_end|>``) and ``"gemma"`` (Gemma's
turn format, with a system message folded into the first user turn as Gemma 3's own template does).

>>> render_chat([{"role": "user", "content": "Hi"}], "chatml")
'<|im_start|>user\\nHi<|im_end|>\\n<|im_start|>assistant\\n'
"""

from __future__ import annotations

import datetime
import functools

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from labkit import assets

CHATML = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
          "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")

# Gemma 2 and Gemma 3 share this turn format; Gemma 2's template (in llama.cpp's collection)
# rejects a system role, which Gemma 3's template prepends to the first user message instead.
GEMMA_TEMPLATE = "google-gemma-2-2b-it"


class TemplateError(ValueError):
    """A chat template rejected the messages (for example roles that do not alternate)."""


def _raise_exception(message: str):
    raise TemplateError(message)


@functools.cache
def _environment() -> ImmutableSandboxedEnvironment:
    # Templates come from model repositories: the sandbox keeps them from reaching Python objects.
    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                                extensions=["jinja2.ext.loopcontrols"])
    environment.globals["raise_exception"] = _raise_exception
    environment.globals["strftime_now"] = lambda fmt: datetime.date.today().strftime(fmt)
    return environment


@functools.cache
def load_template(name: str) -> jinja2.Template:
    """Compile a template by name: ``"chatml"``, ``"gemma"`` or a llama.cpp template file name."""
    if name == "chatml":
        source = CHATML
    else:
        file_name = GEMMA_TEMPLATE if name == "gemma" else name
        source = assets.chat_template_path(file_name).read_text(encoding="utf-8")
    return _environment().from_string(source)


def _fold_system_message(messages: list[dict]) -> list[dict]:
    """Prepend a leading system message to the first user message, as Gemma 3's template does."""
    if not messages or messages[0]["role"] != "system":
        return messages
    system, rest = messages[0], list(messages[1:])
    if rest and rest[0]["role"] == "user":
        rest[0] = {**rest[0], "content": f"{system['content']}\n\n{rest[0]['content']}"}
        return rest
    return [{"role": "user", "content": system["content"]}, *rest]


def render_chat(messages: list[dict], template: str, *, bos_token: str = "",
                eos_token: str = "", add_generation_prompt: bool = True) -> str:
    """Return the prompt text ``template`` builds from ``messages`` (dicts with role and content).

    ``add_generation_prompt`` appends the header of the assistant's turn, which a request to a chat
    endpoint always includes. Raises :class:`TemplateError` when the template rejects the messages.
    """
    if template == "gemma":
        messages = _fold_system_message(messages)
    try:
        return load_template(template).render(messages=messages, bos_token=bos_token,
                                              eos_token=eos_token,
                                              add_generation_prompt=add_generation_prompt)
    except jinja2.TemplateError as error:
        raise TemplateError(f"chat template {template!r} failed: {error}") from None
