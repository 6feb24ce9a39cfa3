#!/usr/bin/env python3
"""Side-by-side benchmark workload for the *published* ``mnesis`` package.

This script is meant to be run by the reference virtualenv's interpreter, which
has the published ``mnesis`` distribution installed (not this repository's
``src/``)::

    benchmarks/.refvenv/bin/python benchmarks/reference_workload.py --turns 1000 --send-turns 200

It only calls the package's public API (``MnesisSession.open/load/send/record/
messages/context_for_next_turn``, ``MnesisConfig``, ``CompactionConfig``) on a
fresh SQLite database in a temporary directory, with the built-in mock LLM
(``MNESIS_MOCK_LLM=1``) so that no network calls are made.  Automatic
compaction is disabled and the model's context limit is raised far beyond the
workload, so the numbers reflect storage / context-assembly overhead rather
than summarisation.

Measured series:

* ``send``: wall time of ``await session.send(msg)`` for ``--send-turns`` turns.
* ``record``: wall time of ``await session.record(user, assistant)`` for
  ``--turns`` turns into one session (overall throughput too).
* ``load``: after closing the recorded session, ``MnesisSession.load()`` and
  ``load()`` + ``context_for_next_turn()``; median of ``--load-reps`` runs.

Per-turn figures are medians over a small window of turns: 8-12 for "turn 10"
and N-4..N for "turn N".  Any ``asyncio.sleep``/``time.sleep`` (main thread)
with a positive delay issued during ``send()`` is counted and timed separately
so that artificial mock delays can be subtracted (``send_engine_ms_*``).

A single JSON object is written to stdout; progress and any library logging go
to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import logging
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, SupportsIndex

# Must be set before the reference package (and litellm) are imported.
os.environ["MNESIS_MOCK_LLM"] = "1"
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

DEFAULT_MODEL = "anthropic/claude-opus-4-6"
# Far above anything the workload produces, so nothing is trimmed or compacted.
HUGE_CONTEXT_LIMIT = 100_000_000
WORDS_PER_MESSAGE = 150
CURVE_CHECKPOINTS = (10, 50, 100, 200, 300, 500, 750, 1000)

_SYLLABLES = (
    "ka", "lo", "mi", "ren", "tu", "sha", "vo", "el", "dri", "pon", "qua", "zi",
    "bel", "nor", "ith", "ca", "mon", "ul", "ste", "fa", "gri", "ox", "pe", "lun",
)  # fmt: skip


def _log(message: str) -> None:
    print(f"[reference_workload] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- text


class WordSource:
    """Deterministic pseudo-word generator (seeded, no external corpus)."""

    def __init__(self, seed: int, vocab_size: int = 4000) -> None:
        self._rng = random.Random(seed)
        vocab: set[str] = set()
        while len(vocab) < vocab_size:
            n = self._rng.randint(1, 4)
            vocab.add("".join(self._rng.choice(_SYLLABLES) for _ in range(n)))
        self._vocab = sorted(vocab)

    def message(self, words: int = WORDS_PER_MESSAGE) -> str:
        chosen = self._rng.choices(self._vocab, k=words)
        return " ".join(chosen) + "."


# ------------------------------------------------------------------------ helpers


@dataclass
class SleepProbe:
    """Counts/times positive-delay sleeps issued while installed."""

    calls: int = 0
    requested_s: float = 0.0
    wall_s: float = 0.0

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        orig_async_sleep = asyncio.sleep
        orig_time_sleep = time.sleep
        main_thread = threading.get_ident()

        async def probed_async_sleep(delay: float, result: Any = None) -> Any:
            if delay <= 0:  # asyncio.sleep(0) is a plain yield, not a delay
                return await orig_async_sleep(delay, result)
            self.calls += 1
            self.requested_s += delay
            start = time.perf_counter()
            try:
                return await orig_async_sleep(delay, result)
            finally:
                self.wall_s += time.perf_counter() - start

        def probed_time_sleep(secs: float | SupportsIndex, /) -> None:
            delay = float(secs)
            if delay <= 0 or threading.get_ident() != main_thread:
                orig_time_sleep(secs)
                return
            self.calls += 1
            self.requested_s += delay
            start = time.perf_counter()
            try:
                orig_time_sleep(secs)
            finally:
                self.wall_s += time.perf_counter() - start

        asyncio.sleep = probed_async_sleep
        time.sleep = probed_time_sleep
        try:
            yield
        finally:
            asyncio.sleep = orig_async_sleep
            time.sleep = orig_time_sleep


def window_median_ms(series_s: Sequence[float], target: int, before: int, after: int) -> float:
    """Median (ms) of 1-based turns ``target-before .. target+after`` clipped to the series."""
    lo = max(1, target - before)
    hi = min(len(series_s), target + after)
    if hi < lo:
        raise ValueError(f"empty window around turn {target} (series has {len(series_s)})")
    return round(statistics.median(series_s[lo - 1 : hi]) * 1000.0, 4)


def turn10_ms(series_s: Sequence[float]) -> float:
    """Median of turns 8-12 (clipped; falls back to the last turn for short series)."""
    return window_median_ms(series_s, min(10, len(series_s)), before=2, after=2)


def turn_n_ms(series_s: Sequence[float]) -> float:
    return window_median_ms(series_s, len(series_s), before=4, after=0)


def fit_ms_turn_n(series_s: Sequence[float]) -> float:
    """Least-squares line over the second half of the series, evaluated at turn N.

    Less sensitive to scheduler/GC noise than a 5-turn window; useful when the
    per-turn cost grows roughly linearly with history length.
    """
    n = len(series_s)
    start = n // 2 + 1
    if n - start + 1 < 2:
        return turn_n_ms(series_s)
    xs = [float(t) for t in range(start, n + 1)]
    fit = statistics.linear_regression(xs, list(series_s[start - 1 :]))
    return round((fit.slope * n + fit.intercept) * 1000.0, 4)


def curve_ms(series_s: Sequence[float]) -> dict[str, float]:
    """Median over turns t-4..t for each checkpoint t <= len(series) (plus the last turn)."""
    n = len(series_s)
    points = sorted({t for t in CURVE_CHECKPOINTS if t <= n} | {n})
    return {str(t): window_median_ms(series_s, t, before=4, after=0) for t in points}


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return json.dumps(content, default=str)


@dataclass
class Workload:
    model: str
    turns: int
    send_turns: int
    load_reps: int
    seed: int
    db_path: str
    mnesis: Any
    results: dict[str, Any] = field(default_factory=dict)
    expected_last_reply: str = ""

    def config(self) -> Any:
        m = self.mnesis
        return m.MnesisConfig(
            compaction=m.CompactionConfig(auto=False),
            model_overrides={"context_limit": HUGE_CONTEXT_LIMIT},
        )

    # ----------------------------------------------------------------- send
    async def run_send(self) -> None:
        words = WordSource(self.seed)
        messages = [words.message() for _ in range(self.send_turns)]
        durations: list[float] = []
        engine: list[float] = []
        probe = SleepProbe()
        last_text = ""
        session_cls = self.mnesis.MnesisSession
        async with session_cls.open(
            model=self.model, config=self.config(), db_path=self.db_path
        ) as session:
            with probe.installed():
                for i, msg in enumerate(messages, start=1):
                    slept_before = probe.wall_s
                    start = time.perf_counter()
                    result = await session.send(msg)
                    elapsed = time.perf_counter() - start
                    durations.append(elapsed)
                    engine.append(elapsed - (probe.wall_s - slept_before))
                    if result.finish_reason != "stop":
                        raise RuntimeError(f"send turn {i}: finish_reason={result.finish_reason!r}")
                    if result.compaction_triggered or result.compaction_result is not None:
                        raise RuntimeError(f"send turn {i}: compaction ran despite auto=False")
                    last_text = result.text
                    if i % 50 == 0 or i == self.send_turns:
                        _log(f"send turn {i}/{self.send_turns}: {elapsed * 1000:.1f} ms")
            stored = await session.messages()
            if len(stored) != 2 * self.send_turns:
                raise RuntimeError(
                    f"send: expected {2 * self.send_turns} stored messages, got {len(stored)}"
                )
        self.results.update(
            send_turns=self.send_turns,
            send_ms_turn10=turn10_ms(durations),
            send_ms_turnN=turn_n_ms(durations),
            send_fit_ms_turnN=fit_ms_turn_n(durations),
            send_engine_ms_turn10=turn10_ms(engine),
            send_engine_ms_turnN=turn_n_ms(engine),
            send_total_s=round(sum(durations), 3),
            send_curve_ms=curve_ms(durations),
            send_stored_messages=len(stored),
            mock_reply_chars=len(last_text),
            mock_reply_words=len(last_text.split()),
            mock_sleep_calls=probe.calls,
            mock_sleep_requested_ms=round(probe.requested_s * 1000.0, 3),
            mock_sleep_wall_ms=round(probe.wall_s * 1000.0, 3),
        )

    # --------------------------------------------------------------- record
    async def run_record(self) -> str:
        words = WordSource(self.seed + 1)
        pairs = [(words.message(), words.message()) for _ in range(self.turns)]
        durations: list[float] = []
        session_cls = self.mnesis.MnesisSession
        async with session_cls.open(
            model=self.model, config=self.config(), db_path=self.db_path
        ) as session:
            session_id: str = session.id
            loop_start = time.perf_counter()
            for i, (user, assistant) in enumerate(pairs, start=1):
                start = time.perf_counter()
                result = await session.record(user_message=user, assistant_response=assistant)
                durations.append(time.perf_counter() - start)
                if result.compaction_triggered:
                    raise RuntimeError(f"record turn {i}: compaction triggered despite auto=False")
                if i % 100 == 0 or i == self.turns:
                    _log(f"record turn {i}/{self.turns}: {durations[-1] * 1000:.2f} ms")
            loop_s = time.perf_counter() - loop_start
            stored = await session.messages()
            if len(stored) != 2 * self.turns:
                raise RuntimeError(
                    f"record: expected {2 * self.turns} stored messages, got {len(stored)}"
                )
        self.results.update(
            turns=self.turns,
            record_ms_turn10=turn10_ms(durations),
            record_ms_turnN=turn_n_ms(durations),
            record_fit_ms_turnN=fit_ms_turn_n(durations),
            record_turns_per_s=round(self.turns / loop_s, 2),
            record_total_s=round(loop_s, 3),
            record_curve_ms=curve_ms(durations),
            record_stored_messages=len(stored),
        )
        self.expected_last_reply = pairs[-1][1]
        return session_id

    # ----------------------------------------------------------------- load
    async def run_load(self, session_id: str) -> None:
        session_cls = self.mnesis.MnesisSession
        load_s: list[float] = []
        context_s: list[float] = []
        total_s: list[float] = []
        context_len = 0
        for rep in range(1, self.load_reps + 1):
            start = time.perf_counter()
            session = await session_cls.load(session_id, config=self.config(), db_path=self.db_path)
            loaded = time.perf_counter()
            try:
                context = await session.context_for_next_turn()
                done = time.perf_counter()
            finally:
                await session.close()
            load_s.append(loaded - start)
            context_s.append(done - loaded)
            total_s.append(done - start)
            context_len = len(context)
            if context_len != 2 * self.turns:
                raise RuntimeError(
                    f"load: expected {2 * self.turns} context messages, got {context_len}"
                )
            last = context[-1]
            if last["role"] != "assistant" or self.expected_last_reply not in _content_text(
                last["content"]
            ):
                raise RuntimeError("load: last context message is not the last recorded reply")
            _log(f"load rep {rep}/{self.load_reps}: {(done - start) * 1000:.1f} ms")
        self.results.update(
            load_ms=round(statistics.median(load_s) * 1000.0, 3),
            context_ms=round(statistics.median(context_s) * 1000.0, 3),
            load_context_ms=round(statistics.median(total_s) * 1000.0, 3),
            load_reps=self.load_reps,
            load_context_messages=context_len,
        )


# ----------------------------------------------------------------------- setup


def _quiet_logging(level_name: str) -> None:
    """Route stdlib logging and structlog to stderr, filtered at ``level_name``."""
    level = logging.getLevelNamesMapping()[level_name.upper()]
    logging.basicConfig(stream=sys.stderr, level=level, force=True)
    for name in ("LiteLLM", "litellm", "aiosqlite", "httpx"):
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    try:
        structlog: Any = importlib.import_module("structlog")
    except ImportError:
        return
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--turns", type=int, default=1000, help="record/load session size (N)")
    p.add_argument(
        "--send-turns", type=int, default=200, help="number of send() turns (send series N)"
    )
    p.add_argument("--load-reps", type=int, default=5, help="load()+context repetitions")
    p.add_argument("--model", default=DEFAULT_MODEL, help="model string (mock mode)")
    p.add_argument("--seed", type=int, default=1234, help="seed for generated words")
    p.add_argument(
        "--skip", action="append", default=[], choices=["send", "record"],
        help="skip a series (repeatable); skipping record also skips load",
    )  # fmt: skip
    p.add_argument(
        "--log-level", default="warning", help="level for library logs on stderr (default warning)"
    )
    p.add_argument("--keep-db", action="store_true", help="keep the temp dir and report its path")
    args = p.parse_args(argv)
    for name in ("turns", "send_turns", "load_reps"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


async def _run(args: argparse.Namespace, mnesis: Any, tmp: Path) -> dict[str, Any]:
    work = Workload(
        model=args.model,
        turns=args.turns,
        send_turns=args.send_turns,
        load_reps=args.load_reps,
        seed=args.seed,
        db_path=str(tmp / "reference_bench.db"),
        mnesis=mnesis,
    )
    if "send" not in args.skip:
        _log(f"send series: {args.send_turns} turns")
        await work.run_send()
    if "record" not in args.skip:
        _log(f"record series: {args.turns} turns")
        session_id = await work.run_record()
        _log(f"load series: {args.load_reps} reps")
        await work.run_load(session_id)
    return work.results


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    real_stdout = sys.stdout
    # Anything printed by the library (or its default structlog config) goes to stderr.
    with contextlib.redirect_stdout(sys.stderr):
        _quiet_logging(args.log_level)
        mnesis: Any = importlib.import_module("mnesis")
        _quiet_logging(args.log_level)  # again, in case importing reconfigured logging
        tmp = Path(tempfile.mkdtemp(prefix="mnesis_ref_bench_"))
        try:
            started = time.perf_counter()
            results = asyncio.run(_run(args, mnesis, tmp))
            wall_s = time.perf_counter() - started
        finally:
            if not args.keep_db:
                shutil.rmtree(tmp, ignore_errors=True)
    report: dict[str, Any] = {
        "implementation": "reference",
        "reference_version": getattr(mnesis, "__version__", "unknown"),
        "reference_path": str(Path(mnesis.__file__).parent),
        "model": args.model,
        "words_per_message": WORDS_PER_MESSAGE,
        "seed": args.seed,
        "log_level": args.log_level,
        "compaction": {"auto": False, "context_limit_override": HUGE_CONTEXT_LIMIT},
        "windows": {
            "turn10": "median of turns 8-12",
            "turnN": "median of turns N-4..N",
            "fit_turnN": "least-squares line over turns N/2..N, evaluated at N",
            "curve": "median of turns t-4..t",
        },
        "python": platform.python_version(),
        "platform": platform.platform(),
        "wall_s": round(wall_s, 3),
        **results,
    }
    if args.keep_db:
        report["db_path"] = str(tmp / "reference_bench.db")
    real_stdout.write(json.dumps(report, indent=2, sort_keys=False) + "\n")
    real_stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
