"""The litellm provider: any model litellm supports, streamed, with real usage.

litellm is imported on first use, never by ``import mnesis``, and always with
``LITELLM_LOCAL_MODEL_COST_MAP=True`` so the import does not reach for the
network. Streaming requests ask for usage (``include_usage``) so the token
counts of a turn are the provider's own. All of litellm's exceptions are
translated here, in one place, into mnesis's :class:`~mnesis.errors.LLMError`
tree; API keys are passed through to litellm and never stored or logged.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

from mnesis.errors import LLMError, LLMPermanentError, LLMTransientError
from mnesis.llm.base import LLMRequest, StreamChunk, ToolCallDelta
from mnesis.models.message import TokenUsage

_T, _P = LLMTransientError, LLMPermanentError
_BY_STATUS = None  # a generic class: 5xx and 429 are transient, the rest permanent

# Every exception class litellm exposes (a test fails when litellm adds one that is
# not here), plus the openai SDK and httpx classes that can escape it. Looked up by
# class name along the exception's MRO, so the most specific entry wins.
LITELLM_ERRORS: dict[str, type[LLMError] | None] = {
    # litellm.exceptions: worth retrying
    "RateLimitError": _T,
    "CallerCredentialRateLimitError": _T,
    "InternalServerError": _T,
    "ServiceUnavailableError": _T,
    "BadGatewayError": _T,
    "MidStreamFallbackError": _T,
    "Timeout": _T,
    "APIConnectionError": _T,
    # litellm.exceptions: the request itself is wrong, refused or unaffordable
    "AuthenticationError": _P,
    "CallerCredentialAuthenticationError": _P,
    "PermissionDeniedError": _P,
    "NotFoundError": _P,
    "BadRequestError": _P,
    "InvalidRequestError": _P,
    "UnprocessableEntityError": _P,
    "ContextWindowExceededError": _P,
    "ContentPolicyViolationError": _P,
    "RejectedRequestError": _P,
    "PaymentRequiredError": _P,
    "BudgetExceededError": _P,
    "UnsupportedParamsError": _P,
    "UnsupportedEndpointError": _P,
    "EndpointNotSupportedByModelError": _P,
    "MalformedRequestFieldError": _P,
    "LiteLLMUnknownProvider": _P,
    "ModelNotMappedError": _P,
    "ImageFetchError": _P,
    "VectorStoreSearchError": _P,
    "APIResponseValidationError": _P,
    "JSONSchemaValidationError": _P,
    "GuardrailRaisedException": _P,
    "BlockedPiiEntityError": _P,
    "ModifyResponseException": _P,
    "SensitiveDataRouteException": _P,
    # litellm.exceptions: generic, the status code decides
    "APIError": _BY_STATUS,
    "APIStatusError": _BY_STATUS,
    "OpenAIError": _BY_STATUS,
    "MockException": _BY_STATUS,
    # the openai SDK and httpx underneath
    "APITimeoutError": _T,
    "TimeoutException": _T,
    "ConnectError": _T,
    "ReadError": _T,
    "WriteError": _T,
    "RemoteProtocolError": _T,
}


def import_litellm() -> Any:
    """Import litellm offline-safe (its bundled price table, no download)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    return litellm


def translate_error(exc: Exception) -> LLMError:
    """Map a litellm (or openai/httpx) exception to a mnesis LLMError."""
    if isinstance(exc, LLMError):
        return exc
    try:
        message = str(exc).strip() or type(exc).__name__
    except Exception:  # some SDK exceptions fail in __str__ when half-built
        message = type(exc).__name__
    if len(message) > 2000:
        message = message[:2000] + "…"
    kind = _by_status(getattr(exc, "status_code", None))
    for cls in type(exc).__mro__:
        if cls.__name__ in LITELLM_ERRORS:
            kind = LITELLM_ERRORS[cls.__name__] or kind
            break
    return kind(message, provider_error=type(exc).__name__)


def _by_status(status: object) -> type[LLMError]:
    transient = isinstance(status, int) and (status >= 500 or status == 429)
    return LLMTransientError if transient else LLMPermanentError


def _get(obj: Any, name: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def usage_from_provider(usage: Any) -> TokenUsage | None:
    """Normalise an OpenAI-style usage object (with Anthropic cache fields) to TokenUsage.

    ``input`` counts uncached prompt tokens only; cache reads and writes are
    their own fields, so prices apply once each.
    """
    if usage is None:
        return None
    prompt = int(_get(usage, "prompt_tokens") or 0)
    completion = int(_get(usage, "completion_tokens") or 0)
    details = _get(usage, "prompt_tokens_details")
    cache_read = int(
        _get(usage, "cache_read_input_tokens")
        or (_get(details, "cached_tokens") if details else 0)
        or 0
    )
    cache_write = int(_get(usage, "cache_creation_input_tokens") or 0)
    total = int(_get(usage, "total_tokens") or 0) or prompt + completion
    return TokenUsage(
        input=max(prompt - cache_read - cache_write, 0),
        output=completion,
        cache_read=cache_read,
        cache_write=cache_write,
        total=total,
    )


def chunk_from_litellm(chunk: Any) -> StreamChunk:
    """One litellm streaming chunk as a StreamChunk."""
    text = ""
    calls: list[ToolCallDelta] = []
    finish = None
    for choice in _get(chunk, "choices") or ():
        delta = _get(choice, "delta")
        if delta is not None:
            text += _get(delta, "content") or ""
            for i, call in enumerate(_get(delta, "tool_calls") or ()):
                fn = _get(call, "function")
                index = _get(call, "index")
                calls.append(
                    ToolCallDelta(
                        index=index if isinstance(index, int) else i,
                        id=_get(call, "id"),
                        name=_get(fn, "name") if fn is not None else None,
                        arguments=(_get(fn, "arguments") or "") if fn is not None else "",
                    )
                )
        finish = _get(choice, "finish_reason") or finish
    return StreamChunk(
        text=text,
        tool_calls=tuple(calls),
        usage=usage_from_provider(_get(chunk, "usage")),
        finish_reason=finish,
    )


class LiteLLMProvider:
    """Calls models through ``litellm.acompletion`` with streaming.

    Args:
        api_base: Base URL of an OpenAI-compatible server (llama.cpp, vLLM,
            Ollama); default: litellm's own setting (``litellm.api_base``).
        api_key: Key to send; default: the provider's usual environment variable.
        extra: Further keyword arguments for ``litellm.acompletion``.
    """

    def __init__(
        self,
        *,
        api_base: str | None = None,
        api_key: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.api_base = api_base
        self._api_key = api_key
        self.extra = dict(extra or {})

    def __repr__(self) -> str:  # never show the key
        return f"LiteLLMProvider(api_base={self.api_base!r})"

    async def stream(self, request: LLMRequest) -> AsyncIterator[StreamChunk]:
        litellm = import_litellm()
        kwargs: dict[str, Any] = {
            "model": request.model,
            "messages": request.messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            **self.extra,
            **request.extra,
        }
        if request.tools:
            kwargs["tools"] = request.tools
            # Function tools are never MCP tools; skip litellm's MCP gateway check,
            # which otherwise needs the optional 'mcp' package.
            kwargs["_skip_mcp_handler"] = True
        if request.tool_choice is not None:
            kwargs["tool_choice"] = request.tool_choice
        if request.max_tokens is not None:
            kwargs["max_tokens"] = request.max_tokens
        if request.temperature is not None:
            kwargs["temperature"] = request.temperature
        if self.api_base is not None:
            kwargs["api_base"] = self.api_base
        if kwargs.get("api_base") or getattr(litellm, "api_base", None):
            # OpenAI-compatible servers (llama.cpp, vLLM) render chat templates that
            # fail on a null content; an empty string means the same thing.
            kwargs["messages"] = [
                {**m, "content": ""} if m.get("content") is None else m for m in request.messages
            ]
        if self._api_key is not None:
            kwargs["api_key"] = self._api_key
        try:
            response = await litellm.acompletion(**kwargs)
            async for chunk in response:
                yield chunk_from_litellm(chunk)
        except Exception as exc:
            raise translate_error(exc) from exc
