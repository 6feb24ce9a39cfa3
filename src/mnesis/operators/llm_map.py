"""LLMMap: one stateless, schema-validated model call per item, in parallel.

Bulk work (classify 5,000 tickets, extract fields from 300 files) stays out of
any session's context: each item gets its own call, the reply is parsed and
validated against the output schema, and a reply that fails validation is
retried with the error fed back. Results stream in completion order.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

from pydantic import BaseModel, ValidationError

from mnesis.errors import InvalidInputError, LLMError
from mnesis.events.bus import EventBus, MnesisEvent
from mnesis.llm import LLMProvider, default_provider
from mnesis.llm.base import LLMRequest, complete
from mnesis.llm.limits import known_input_window
from mnesis.llm.mock import SCHEMA_MARKER
from mnesis.llm.retry import as_llm_error, backoff_delay
from mnesis.models.config import OperatorConfig, RetryConfig
from mnesis.models.message import TokenUsage
from mnesis.operators._runs import (
    PathLike,
    RunTracker,
    fingerprint,
    open_inputs,
    run_tracked,
)
from mnesis.operators.results import ErrorKind, MapBatch, MapResult
from mnesis.operators.templates import compile_template, render
from mnesis.tokens import TokenEstimator

DEFAULT_RETRY_GUIDANCE = (
    "Your previous reply could not be used: {error}\n"
    "Reply again with only a JSON object that matches the schema."
)
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


class OutputSchemaTypeError(InvalidInputError, TypeError):
    """``output_schema`` is neither a Pydantic model class nor a dict.

    A ``TypeError`` as in mnesis 0.4.0, and an ``InvalidInputError`` like every
    other bad argument here.
    """


class _Schema:
    """A Pydantic model class or a JSON-Schema dict, behind one validate()."""

    def __init__(self, schema: Any) -> None:
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            self.model: type[BaseModel] | None = schema
            self.json_schema = schema.model_json_schema()
            self._validator: Any = None
        elif isinstance(schema, dict):
            import jsonschema

            try:
                validator_cls = jsonschema.validators.validator_for(schema)
                validator_cls.check_schema(schema)
            except jsonschema.SchemaError as exc:
                raise InvalidInputError(
                    f"output_schema is not a valid JSON Schema: {exc.message}"
                ) from exc
            self.model = None
            self.json_schema = schema
            self._validator = validator_cls(schema)
        else:
            raise OutputSchemaTypeError(
                "output_schema must be a Pydantic model class or a JSON-Schema dict, "
                f"not {type(schema).__name__}"
            )

    def validate(self, data: Any) -> Any:
        if self.model is not None:
            return self.model.model_validate(data)
        errors = sorted(self._validator.iter_errors(data), key=lambda e: list(e.path))
        if errors:
            raise ValueError(
                "; ".join(
                    f"{'/'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in errors[:5]
                )
            )
        return data


def extract_json(text: str) -> Any:
    """The JSON value in a reply: bare, fenced in ```json, or the outermost {...}."""
    candidates = [text.strip()]
    candidates += [m.strip() for m in _FENCE.findall(text)]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    raise ValueError("the reply contains no JSON object")


_BACKOFF = RetryConfig(base_delay=0.5, max_delay=8.0)


async def _back_off(attempt: int, retries: int) -> None:
    """Wait before retrying a timeout or a transient provider error."""
    if attempt < retries:
        await asyncio.sleep(backoff_delay(_BACKOFF, attempt + 1))


class LLMMap:
    """Map a prompt template over inputs with one validated model call each.

    Args:
        config: Concurrency and retries (``OperatorConfig``).
        estimator: Counts each rendered prompt (default: the model's tokenizer); an
            item whose prompt cannot fit the model's input window fails up front,
            without a model call.
        event_bus: Publish ``MAP_*`` events here.
        model: Default model for :meth:`run`.
        provider: Model backend; default litellm (the mock under ``MNESIS_MOCK_LLM=1``).
    """

    def __init__(
        self,
        config: OperatorConfig | None = None,
        estimator: TokenEstimator | None = None,
        event_bus: EventBus | None = None,
        model: str | None = None,
        *,
        provider: LLMProvider | None = None,
    ) -> None:
        self.config = config or OperatorConfig()
        self.estimator = estimator
        self.event_bus = event_bus
        self.model = model
        self.provider = provider

    async def run(
        self,
        inputs: Iterable[Any],
        prompt_template: str,
        output_schema: Any,
        *,
        model: str | None = None,
        concurrency: int | None = None,
        max_retries: int | None = None,
        system_prompt: str | None = None,
        temperature: float = 0.0,
        timeout_secs: float = 60.0,
        retry_guidance: str = DEFAULT_RETRY_GUIDANCE,
        run_id: str | None = None,
        db_path: str | None = None,
        output_path: PathLike | None = None,
    ) -> AsyncIterator[MapResult]:
        """Yield one :class:`MapResult` per input, in completion order.

        ``inputs`` may be a path to a JSONL file (one item per line, read
        lazily). With ``run_id`` each item's status is kept in the store
        (``db_path``), and running again with the same id processes only the
        items that never finished. ``output_path`` receives every result of
        the run as JSONL, in input order, when the run ends.
        """
        template = compile_template(prompt_template)
        schema = _Schema(output_schema)
        chosen = model or self.model
        if not chosen:
            raise InvalidInputError("LLMMap needs a model: pass model= to LLMMap() or run()")
        workers = concurrency or self.config.llm_map_concurrency
        retries = self.config.max_retries if max_retries is None else max_retries
        if workers < 1 or retries < 0 or timeout_secs <= 0:
            raise InvalidInputError("concurrency >= 1, max_retries >= 0, timeout_secs > 0")
        items, total, digest = open_inputs(inputs)
        provider = self.provider or default_provider()
        instruction = f"\n\n{SCHEMA_MARKER}\n{json.dumps(schema.json_schema)}"
        estimator = self.estimator or TokenEstimator(chosen)
        window = known_input_window(chosen)
        system_tokens = estimator.estimate_message(system_prompt) if system_prompt else 0
        started = time.perf_counter()
        self._publish(
            MnesisEvent.MAP_STARTED, {"operator": "llm_map", "total": total or 0, "model": chosen}
        )

        async def one(index: int, item: Any) -> MapResult:
            try:
                prompt = render(template, item) + instruction
            except InvalidInputError as exc:  # this item does not fit the template
                return self._done(
                    MapResult(
                        input=item,
                        success=False,
                        error=str(exc),
                        error_kind="validation",
                        attempts=0,
                        index=index,
                    )
                )
            if window is not None:
                size = system_tokens + estimator.estimate_message(prompt)
                if size > window:
                    return self._done(
                        MapResult(
                            input=item,
                            success=False,
                            error=f"the prompt is {size:,} tokens; {chosen} accepts "
                            f"{window:,} input tokens",
                            error_kind="validation",
                            attempts=0,
                            index=index,
                        )
                    )
            messages: list[dict[str, Any]] = []
            if system_prompt:
                messages.append({"role": "system", "content": system_prompt})
            messages.append({"role": "user", "content": prompt})
            usage = TokenUsage()
            error: str = ""
            kind: ErrorKind | None = None
            attempts = 0
            for attempt in range(retries + 1):
                attempts = attempt + 1
                try:
                    async with asyncio.timeout(timeout_secs):
                        reply = await complete(
                            provider,
                            LLMRequest(
                                model=chosen, messages=list(messages), temperature=temperature
                            ),
                        )
                except TimeoutError:
                    error, kind = f"no reply within {timeout_secs} s", "timeout"
                    await _back_off(attempt, retries)
                    continue
                except Exception as exc:
                    llm_error = as_llm_error(exc)
                    error, kind = str(llm_error), "llm_error"
                    if isinstance(llm_error, LLMError) and not llm_error.transient:
                        break
                    await _back_off(attempt, retries)
                    continue
                if reply.usage is not None:
                    usage = usage + reply.usage
                try:
                    data = extract_json(reply.text)
                except ValueError as exc:
                    error, kind = str(exc), "schema_error"
                else:
                    try:
                        output = schema.validate(data)
                    except (ValidationError, ValueError) as exc:
                        error, kind = str(exc), "validation"
                    else:
                        return self._done(
                            MapResult(
                                input=item,
                                output=output,
                                success=True,
                                attempts=attempts,
                                index=index,
                                tokens=usage,
                            )
                        )
                messages += [
                    {"role": "assistant", "content": reply.text},
                    {"role": "user", "content": retry_guidance.replace("{error}", error[:2000])},
                ]
            return self._done(
                MapResult(
                    input=item,
                    success=False,
                    error=error,
                    error_kind=kind,
                    attempts=attempts,
                    index=index,
                    tokens=usage,
                )
            )

        tracker = None
        if run_id is not None:
            work = fingerprint(prompt_template, schema.json_schema, chosen, system_prompt, digest)
            tracker = await RunTracker.open(run_id, db_path, "llm_map", work)

        succeeded = failed = 0
        try:
            async for result in run_tracked(items, one, workers, tracker, output_path):
                succeeded += result.success
                failed += not result.success
                yield result
        finally:  # also when the consumer stops early
            self._publish(
                MnesisEvent.MAP_COMPLETED,
                {
                    "operator": "llm_map",
                    "total": total or 0,
                    "succeeded": succeeded,
                    "failed": failed,
                    "elapsed_ms": (time.perf_counter() - started) * 1000,
                },
            )

    async def run_all(
        self, inputs: Iterable[Any], prompt_template: str, output_schema: Any, **kwargs: Any
    ) -> MapBatch:
        """Run everything and return the results in input order (with ``run_id``:
        every item of the run, including those finished by earlier runs)."""
        results = [r async for r in self.run(inputs, prompt_template, output_schema, **kwargs)]
        if kwargs.get("run_id") is not None:
            results = await self._stored_results(
                kwargs["run_id"], kwargs.get("db_path"), _Schema(output_schema)
            )
        return MapBatch(results=sorted(results, key=lambda r: r.index))

    @staticmethod
    async def _stored_results(run_id: str, db_path: str | None, schema: _Schema) -> list[MapResult]:
        tracker = await RunTracker.open_existing(run_id, db_path)
        try:
            rows = await tracker.results()
        finally:
            await tracker.close()
        results = []
        for row in rows:
            result = MapResult.model_validate_json(row)
            if result.success and schema.model is not None:
                result = result.model_copy(update={"output": schema.validate(result.output)})
            results.append(result)
        return results

    def _done(self, result: MapResult) -> MapResult:
        kind: ErrorKind | None = result.error_kind
        self._publish(
            MnesisEvent.MAP_ITEM_COMPLETED,
            {
                "operator": "llm_map",
                "index": result.index,
                "success": result.success,
                "attempts": result.attempts,
                "error_kind": kind,
            },
        )
        return result

    def _publish(self, event: MnesisEvent, payload: Any) -> None:
        if self.event_bus is not None:
            self.event_bus.publish(event, payload)
