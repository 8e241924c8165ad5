"""Optional LLM backends, used only where asked (never by writes or recall).

Anything with a ``model_id`` and a ``complete(prompt, *, system=None,
max_tokens=512) -> str`` method is an :class:`LlmBackend`. Two come with
engramdb, each holding one ``httpx.Client`` created once (connection reuse,
thread-safe) until :meth:`close`:

* :class:`OllamaBackend` — ``POST /api/chat`` of an Ollama server;
* :class:`OpenAIBackend` — ``POST /v1/chat/completions`` of any
  OpenAI-compatible server (OpenAI, vLLM, llama.cpp, LM Studio ...).

Failures raise, with messages that leave out the server address (adapters may
show them to clients; the chained exception keeps it)::

    LlmError                 an error status, or a reply without the text in it
    ├── LlmUnavailable       connection refused, timeout, any transport failure
    └── LlmBadOutput         the text is not in the shape asked for (see parse_json)

The facade uses a backend for :meth:`Memory.enrich_index` and
:meth:`Memory.extract`; whatever they write names ``model_id``.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..errors import InvalidInput, LlmBadOutput, LlmError, LlmUnavailable

if TYPE_CHECKING:
    import httpx

__all__ = ["LlmBackend", "OllamaBackend", "OpenAIBackend", "parse_json"]


@runtime_checkable
class LlmBackend(Protocol):
    """A text-completion model. ``model_id`` names it in the events it helps write."""

    model_id: str

    def complete(self, prompt: str, *, system: str | None = None, max_tokens: int = 512) -> str:
        ...


class _HttpBackend:
    """One ``httpx.Client`` per instance; subclasses say where to POST and how to read."""

    api = ""
    path = ""

    def __init__(
        self, base_url: str, model: str, *, api_key: str | None = None, timeout: float = 120.0,
        temperature: float = 0.0,
    ) -> None:
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise InvalidInput("base_url must start with http:// or https://")
        if not isinstance(model, str) or not model:
            raise InvalidInput("model must be a non-empty string")
        try:
            import httpx
        except ImportError as exc:  # pragma: no cover - httpx ships with the recall extra
            raise LlmError("LLM backends need httpx: pip install httpx") from exc
        self.model = model
        self.model_id = f"{self.api}:{model}"
        self.temperature = temperature
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(base_url=base_url.rstrip("/"), headers=headers,
                                    timeout=timeout)

    def complete(self, prompt: str, *, system: str | None = None, max_tokens: int = 512) -> str:
        """The model's answer to ``prompt`` (one request, no streaming)."""
        if not isinstance(prompt, str) or not prompt:
            raise InvalidInput("prompt must be a non-empty string")
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise InvalidInput("max_tokens must be a positive integer")
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": prompt})
        response = self._post(self._body(messages, max_tokens))
        try:
            text = self._text(response.json())
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise LlmError("LLM server sent a malformed reply", model=self.model_id) from exc
        if not isinstance(text, str):
            raise LlmError("LLM server sent a reply without text", model=self.model_id)
        return text

    def _post(self, body: dict[str, Any]) -> httpx.Response:
        import httpx

        try:
            response = self._client.post(self.path, json=body)
        except httpx.HTTPError as exc:
            raise LlmUnavailable(
                f"LLM request failed ({type(exc).__name__})", model=self.model_id
            ) from exc
        if response.status_code >= 400:
            raise LlmError(
                f"LLM server answered HTTP {response.status_code}: {response.text[:200]}",
                model=self.model_id, http_status=response.status_code,
            )
        return response

    def _body(self, messages: list[dict[str, str]], max_tokens: int) -> dict[str, Any]:
        raise NotImplementedError

    def _text(self, reply: Any) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model_id={self.model_id!r})"


class OllamaBackend(_HttpBackend):
    """An Ollama server (usually ``http://127.0.0.1:11434``), ``POST /api/chat``."""

    api = "ollama"
    path = "/api/chat"

    def _body(self, messages: list[dict[str, str]], max_tokens: int) -> dict[str, Any]:
        return {
            "model": self.model, "messages": messages, "stream": False,
            "options": {"num_predict": max_tokens, "temperature": self.temperature},
        }

    def _text(self, reply: Any) -> Any:
        return reply["message"]["content"]


class OpenAIBackend(_HttpBackend):
    """An OpenAI-compatible server, ``POST {base_url}/v1/chat/completions``.

    ``base_url`` is the server root (``https://api.openai.com``, or
    ``http://127.0.0.1:8000`` for a local vLLM/llama.cpp); ``api_key`` is sent
    as a bearer token when given.
    """

    api = "openai"
    path = "/v1/chat/completions"

    def _body(self, messages: list[dict[str, str]], max_tokens: int) -> dict[str, Any]:
        return {
            "model": self.model, "messages": messages, "max_tokens": max_tokens,
            "temperature": self.temperature,
        }

    def _text(self, reply: Any) -> Any:
        return reply["choices"][0]["message"]["content"]


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def parse_json(text: str, *, model: str = "") -> Any:
    """The JSON value in a model's answer: the whole answer, a fenced block in it,
    or the outermost ``{...}``; :class:`LlmBadOutput` if there is none."""
    candidates = [text.strip()]
    candidates += [m.group(1).strip() for m in _FENCE.finditer(text)]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    raise LlmBadOutput("the model's answer is not valid JSON", model=model, answer=text[:200])
