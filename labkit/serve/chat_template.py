"""Turn chat messages into prompt tokens with the model's own chat template, rendered in a sandbox.

A GGUF usually carries its template as Jinja source under ``tokenizer.chat_template``. The template
comes from the model file, so it is rendered in Jinja's immutable sandbox, which forbids attribute
access to Python internals and changes to passed-in objects. A file without a template (the Gemma
3 270M base file) falls back to the turn format of its architecture, read from
``general.architecture``.

>>> template = ChatTemplate.from_source("{% for m in messages %}[{{ m.role }}] {{ m.content }}\\n"
...                                     "{% endfor %}{% if add_generation_prompt %}[assistant] {% endif %}")
>>> template.render([{"role": "user", "content": "Hi"}])
'[user] Hi\\n[assistant] '

Message content is untrusted: a user who types ``<|im_end|>`` must not close their turn. The
template's own text is tokenized with control tokens recognised, the content never is (see
:func:`chat_prompt_tokens`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from importlib import resources

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from labkit.serve.errors import InvalidRequest

ROLES = ("system", "developer", "user", "assistant")

# Turn formats for files without a template, by ``general.architecture``; ChatML otherwise.
FALLBACK_TEMPLATES = {
    "gemma": "gemma.jinja",
    "gemma2": "gemma.jinja",
    "gemma3": "gemma.jinja",
    "gemma3n": "gemma.jinja",
    "phi3": "phi3.jinja",
}
DEFAULT_FALLBACK = "chatml.jinja"

# Stand-ins for message content while rendering; private-use characters no template emits.
_MARK = "\ue000{}\ue001"
_MARK_PATTERN = re.compile("\ue000(\\d+)\ue001")


def _raise_exception(message: str):
    # Templates call raise_exception("...") to reject a conversation (for example two system
    # messages); the message becomes the client's 400 error.
    raise InvalidRequest(f"The chat template rejected the messages: {message}", param="messages")


def _strftime_now(format: str) -> str:
    return datetime.now().strftime(format)


def _tojson(value, indent=None) -> str:
    # Jinja's own tojson escapes <, > and & for HTML, which would change the prompt text.
    return json.dumps(value, ensure_ascii=False, indent=indent)


def _environment() -> ImmutableSandboxedEnvironment:
    # The same options Hugging Face uses when it applies chat templates, so templates written
    # for transformers render the same text here.
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=["jinja2.ext.loopcontrols"])
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    env.filters["tojson"] = _tojson
    return env


@dataclass
class ChatTemplate:
    """A compiled chat template and where it came from (``"gguf"`` or a fallback file name)."""

    source: str
    origin: str
    bos_token: str = ""
    eos_token: str = ""

    def __post_init__(self):
        try:
            self._compiled = _environment().from_string(self.source)
        except jinja2.TemplateSyntaxError as error:
            raise ValueError(f"chat template from {self.origin} is not valid Jinja: {error}") from None

    @classmethod
    def from_source(cls, source: str, *, origin: str = "string", bos_token: str = "",
                    eos_token: str = "") -> "ChatTemplate":
        """Compile Jinja ``source`` (as found under ``tokenizer.chat_template``)."""
        return cls(source, origin, bos_token, eos_token)

    @classmethod
    def fallback(cls, architecture: str, *, bos_token: str = "", eos_token: str = "") -> "ChatTemplate":
        """Return the turn format used for ``architecture`` when its file carries no template."""
        name = FALLBACK_TEMPLATES.get(architecture, DEFAULT_FALLBACK)
        source = resources.files("labkit.serve").joinpath("templates", name).read_text()
        return cls(source, f"fallback {name}", bos_token, eos_token)

    def render(self, messages: list[dict], *, add_generation_prompt: bool = True) -> str:
        """Return the prompt text for ``messages``, ready to be tokenized with control tokens on."""
        try:
            return self._compiled.render(messages=messages, add_generation_prompt=add_generation_prompt,
                                         bos_token=self.bos_token, eos_token=self.eos_token,
                                         tools=None)
        except InvalidRequest:
            raise
        except jinja2.exceptions.SecurityError as error:
            raise InvalidRequest(f"The chat template from {self.origin} tried an operation the "
                                 f"sandbox forbids: {error}", param="messages") from None
        except (jinja2.TemplateError, TypeError, ValueError, KeyError, IndexError) as error:
            raise InvalidRequest(f"The chat template from {self.origin} failed on these messages: "
                                 f"{error}", param="messages") from None


def normalize_messages(messages) -> list[dict]:
    """Check chat messages and return them as ``[{"role": ..., "content": str}]``.

    Content may be a string or a list of text parts (``[{"type": "text", "text": "..."}]``);
    the parts are joined. ``developer`` is the newer name of ``system`` and is renamed.

    >>> normalize_messages([{"role": "user", "content": [{"type": "text", "text": "Hi"}]}])
    [{'role': 'user', 'content': 'Hi'}]
    """
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages must be a non-empty list of {role, content} objects.",
                             param="messages")
    normalized = []
    for i, message in enumerate(messages):
        param = f"messages[{i}]"
        if not isinstance(message, dict):
            raise InvalidRequest(f"{param} must be an object with role and content.", param=param)
        role = message.get("role")
        if role not in ROLES:
            raise InvalidRequest(f"{param}.role must be one of {', '.join(ROLES)}; got {role!r}. "
                                 "Tool messages need tool calling, which this server does not offer.",
                                 param=f"{param}.role")
        content = message.get("content")
        if content is None and role == "assistant":
            content = ""
        if isinstance(content, list):
            texts = []
            for j, part in enumerate(content):
                if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                    raise InvalidRequest(f"{param}.content[{j}] must be a text part "
                                         '({"type": "text", "text": "..."}); these models read text only.',
                                         param=f"{param}.content")
                texts.append(part["text"])
            content = "".join(texts)
        if not isinstance(content, str):
            raise InvalidRequest(f"{param}.content must be a string or a list of text parts.",
                                 param=f"{param}.content")
        normalized.append({"role": "system" if role == "developer" else role, "content": content})
    return normalized


def chat_prompt_tokens(model, template: ChatTemplate, messages: list[dict]) -> list[int]:
    """Render ``messages`` and tokenize the result for ``model`` (a :class:`labkit.serve.llama.LlamaModel`).

    Control-token text written by the template becomes control tokens; the same text inside a
    message stays plain text. BOS is added only when the vocabulary requires it and the template
    has not already written it, so a prompt never starts with two.
    """
    text = template.render(messages)
    controls = model.control_texts()
    injected = any(control in m["content"] for m in messages for control in controls)

    if not injected:
        # The usual case: tokenizing the whole prompt at once keeps the merges across the edges
        # between template text and content exactly as the model saw them in training.
        tokens = model.tokenize(text, parse_special=True)
    else:
        tokens = _tokenize_with_plain_content(model, template, messages, text, controls)

    if model.special.add_bos and model.special.bos >= 0 and (not tokens or tokens[0] != model.special.bos):
        tokens.insert(0, model.special.bos)
    return tokens


def _tokenize_with_plain_content(model, template: ChatTemplate, messages: list[dict], text: str,
                                 controls: dict[str, int]) -> list[int]:
    """Tokenize a prompt whose messages contain control-token text, keeping that text plain."""
    marked = template.render([{**m, "content": _MARK.format(i)} for i, m in enumerate(messages)])

    # The marks work only if the template copies content verbatim. A template that trims or
    # rewrites content makes the marked prompt differ from the real one.
    pieces = _MARK_PATTERN.split(marked)   # template text, message index, template text, ...
    rebuilt = "".join(messages[int(p)]["content"] if i % 2 else p for i, p in enumerate(pieces))
    if rebuilt != text:
        raise InvalidRequest("A message contains the text of a control token (such as "
                             f"{next(c for c in controls if any(c in m['content'] for m in messages))!r}), "
                             "and this model's chat template changes message content, so it cannot "
                             "be kept apart safely. Remove that text from the message.",
                             param="messages")

    # Split template text at control tokens, and join plain runs with the content between them.
    # The plain text is then tokenized in the same fragments llama.cpp would use.
    control_pattern = re.compile("|".join(re.escape(c) for c in sorted(controls, key=len, reverse=True)))
    tokens: list[int] = []
    plain = ""
    for i, piece in enumerate(pieces):
        if i % 2:
            plain += messages[int(piece)]["content"]
            continue
        position = 0
        for match in control_pattern.finditer(piece):
            plain += piece[position:match.start()]
            if plain:
                tokens += model.tokenize(plain)
                plain = ""
            tokens.append(controls[match.group()])
            position = match.end()
        plain += piece[position:]
    if plain:
        tokens += model.tokenize(plain)
    return tokens


def template_for(model) -> ChatTemplate:
    """Return the model's own template, or its architecture's fallback when the file has none."""
    bos = model.token_text(model.special.bos) if model.special.bos >= 0 else ""
    eos = model.token_text(model.special.eos) if model.special.eos >= 0 else ""
    if model.chat_template:
        return ChatTemplate.from_source(model.chat_template, origin="gguf", bos_token=bos, eos_token=eos)
    return ChatTemplate.fallback(model.architecture, bos_token=bos, eos_token=eos)
