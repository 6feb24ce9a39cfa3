#!/usr/bin/env python3
"""Meaning-based recall: does search() find facts asked in other words, and at what cost?

1. Recall: the facts of ``benchmarks/data/paraphrases/facts.tsv`` are planted
   in a long compacting session (filler turns around them, tool calls
   included); each question is asked in other words (at most one shared
   content word, checked here). recall@1/@5 of ``session.search`` (hybrid),
   its two halves alone, ``session.grep`` and a BM25 baseline, on the ``tune``
   half (used to choose the fusion parameters) and the held-out ``test`` half.
2. Latency: search p50/p99 over 10,000 and 100,000 stored messages (real
   text for the full-text side; random unit vectors for the vector side, whose
   cost does not depend on what the vectors say; the query is embedded by the
   real model each time).
3. Backlog catch-up: texts per second the background worker embeds.
4. ``record()`` throughput with the embedding worker on and off.

Needs ``mnesis[semantic]`` (the offline default embedder).

    python benchmarks/semantic.py [--sizes 10000,100000] [--queries 200] [--turns 440]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import re
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import numpy as np

from mnesis import MnesisConfig, MnesisSession, MockProvider, TextPart, ToolPart
from mnesis.llm.embedders import default_embedder
from mnesis.recall.search import STOPWORDS, Fusion, HybridSearch
from mnesis.store import NewMessage, NewPart, SessionRecord, SQLiteStore
from mnesis.store.vectors import NewEmbedding, body_item, vector_bytes

DATA = Path(__file__).resolve().parent / "data" / "paraphrases" / "facts.tsv"
MODEL = "mock/bench"

TOPICS = (
    "the refactor of the {a} module",
    "our trip to {city}",
    "the {a} dashboard",
    "dinner plans with {name}",
    "the {a} migration",
    "a book about {b}",
    "the garden and the {b}",
    "the quarterly review of {a}",
    "{name}'s new job",
    "the {b} workshop",
)
FILLER_USER = (
    "Can you help me think through {topic}? I keep going back and forth.",
    "I spent the afternoon on {topic} and I'm not sure it went anywhere.",
    "What do you think about {topic}? {name} had some opinions.",
    "Remind me to follow up on {topic} next week.",
    "Let's park {topic} for now and come back to it later.",
    "Quick question about {topic}: is it worth the effort?",
)
FILLER_ASSISTANT = (
    "Sure. For {topic}, I'd start by listing what you already know and what is open.",
    "That sounds reasonable. With {topic}, small steps usually work better than a big plan.",
    "Noted. I'll keep {topic} in mind; tell me when you want to pick it up again.",
    "It depends on your goals. {topic} can take a while, so set a time limit.",
)
WORDS_A = "search billing auth reporting export onboarding analytics scheduler cache".split()
WORDS_B = "ceramics birds jazz chess sourdough astronomy origami knitting".split()
CITIES = "Lyon Porto Krakow Oslo Valencia Ghent Turin Bergen".split()
NAMES = "Lena Marco Yuki Omar Chloe Ivan Nadia Pablo".split()
_WORD = re.compile(r"\w+")


def load_facts() -> list[tuple[str, str, str]]:
    rows = []
    for line in DATA.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        split, fact, question = line.split("\t")
        rows.append((split, fact, question))
    return rows


def content_words(text: str) -> set[str]:
    return {w for w in (x.lower() for x in _WORD.findall(text)) if w not in STOPWORDS}


def check_paraphrases(facts: list[tuple[str, str, str]]) -> None:
    for _, fact, question in facts:
        shared = content_words(fact) & content_words(question)
        if len(shared) > 1:
            raise SystemExit(f"question shares {sorted(shared)} with its fact: {question!r}")


def filler(rng: random.Random) -> tuple[str, str]:
    slots = {
        "a": rng.choice(WORDS_A),
        "b": rng.choice(WORDS_B),
        "city": rng.choice(CITIES),
        "name": rng.choice(NAMES),
    }
    topic = rng.choice(TOPICS).format(**slots)
    slots["topic"] = topic
    return rng.choice(FILLER_USER).format(**slots), rng.choice(FILLER_ASSISTANT).format(**slots)


def compacting_config(embedder: str) -> MnesisConfig:
    return MnesisConfig.model_validate(
        {
            "model_overrides": {"context_limit": 6_000, "max_output_tokens": 500},
            "compaction": {"compaction_output_budget": 500},
            "recall": {"embedder": embedder},
        }
    )


async def plant(db: str, facts: list[tuple[str, str, str]], turns: int) -> tuple[str, list[str]]:
    """A compacting session of ``turns`` turns with the facts spread through it;
    the session id and each fact's message id."""
    rng = random.Random(7)
    spots = {round((i + 0.5) * turns / len(facts)): i for i in range(len(facts))}
    ids = [""] * len(facts)
    async with MnesisSession.open(
        model=MODEL, db_path=db, provider=MockProvider(), config=compacting_config("local")
    ) as session:
        for turn in range(turns):
            if turn in spots:
                index = spots[turn]
                done = await session.record(facts[index][1], "Got it, I'll remember that.")
                ids[index] = done.user_message_id
                continue
            user, reply = filler(rng)
            if turn % 9 == 4:  # a tool call with its output, as agents store them
                call = ToolPart(
                    tool_name="lookup",
                    tool_call_id=f"call-{turn}",
                    input={"topic": user[:40]},
                    output=reply,
                    status="completed",
                )
                await session.record(user, [TextPart(text="Let me look."), call])
            else:
                await session.record(user, reply)
        await session.wait_for_compaction()
        await session.wait_for_embeddings()
        summarised = await session.covering_summaries(ids)
        print(
            f"planted {len(facts)} facts in {turns} turns; {len(summarised)} of them are "
            "summarised out of the context now\n"
        )
        return session.id, ids


class BM25:
    """Okapi BM25 over whole messages (k1=1.2, b=0.75), stop words dropped."""

    def __init__(self, docs: list[tuple[str, str]]) -> None:
        self.ids = [d[0] for d in docs]
        self.terms = [Counter(query_terms_all(d[1])) for d in docs]
        self.lengths = [sum(t.values()) for t in self.terms]
        self.avg = sum(self.lengths) / max(1, len(self.lengths))
        df: Counter[str] = Counter()
        for t in self.terms:
            df.update(t.keys())
        n = len(docs)
        self.idf = {w: math.log(1 + (n - f + 0.5) / (f + 0.5)) for w, f in df.items()}

    def rank(self, query: str, k: int = 5) -> list[str]:
        words = query_terms_all(query)
        scores = []
        for i, tf in enumerate(self.terms):
            s = 0.0
            for w in words:
                if w in tf:
                    f = tf[w]
                    s += (
                        self.idf[w]
                        * f
                        * 2.2
                        / (f + 1.2 * (0.25 + 0.75 * self.lengths[i] / self.avg))
                    )
            if s > 0:
                scores.append((s, self.ids[i]))
        scores.sort(reverse=True)
        return [i for _, i in scores[:k]]


def query_terms_all(text: str) -> list[str]:
    return [w for w in (x.lower() for x in _WORD.findall(text)) if w not in STOPWORDS]


def recall_at(ranked: list[list[str]], wanted: list[str], k: int) -> float:
    return 100.0 * sum(w in r[:k] for r, w in zip(ranked, wanted, strict=True)) / len(wanted)


async def recall_tables(db: str, turns: int) -> None:
    facts = load_facts()
    check_paraphrases(facts)
    session_id, fact_ids = await plant(db, facts, turns)
    store = await SQLiteStore(db).open()
    embedder = default_embedder()
    try:
        docs = [(m.id, m.text_content()) for m in await store.get_messages(session_id)]
        bm25 = BM25(docs)
        halves = {s: [i for i, f in enumerate(facts) if f[0] == s] for s in ("tune", "test")}

        async def ranked_by(search: HybridSearch, rows: list[int]) -> list[list[str]]:
            out = []
            for i in rows:
                result = await search.search(facts[i][2], (session_id,), limit=5)
                out.append([m.id for m in result])
            return out

        async def grep_ranked(rows: list[int]) -> list[list[str]]:
            out = []
            async with await MnesisSession.load(session_id, db_path=db) as session:
                for i in rows:
                    result = await session.grep(facts[i][2], limit=5)
                    out.append([m.message_id for m in result])
            return out

        # Tuning on the tune half only.
        grid = [Fusion(k, w, 1.0) for k in (10.0, 30.0, 60.0) for w in (0.1, 0.25, 0.5, 1.0)]
        best: tuple[float, float, Fusion] | None = None
        print("| fusion (tune half) | recall@1 | recall@5 |\n|---|---:|---:|")
        for fusion in grid:
            ranked = await ranked_by(HybridSearch(store, embedder, fusion=fusion), halves["tune"])
            wanted = [fact_ids[i] for i in halves["tune"]]
            r1, r5 = recall_at(ranked, wanted, 1), recall_at(ranked, wanted, 5)
            print(f"| k={fusion.k:g}, words={fusion.words:g} | {r1:.1f}% | {r5:.1f}% |")
            if best is None or (r5, r1) > best[:2]:
                best = (r5, r1, fusion)
        assert best is not None
        chosen = best[2]
        print(f"\nchosen on the tune half: k={chosen.k:g}, words weight={chosen.words:g}\n")

        methods = {
            "search() hybrid (library default)": HybridSearch(store, embedder),
            f"search() hybrid (k={chosen.k:g}, words={chosen.words:g})": HybridSearch(
                store, embedder, fusion=chosen
            ),
            "search() by meaning alone": HybridSearch(
                store, embedder, fusion=Fusion(60.0, 0.0, 1.0)
            ),
            "search() by words alone (no extra)": HybridSearch(store, None),
        }
        print("| method | tune @1 | tune @5 | **test @1** | **test @5** |")
        print("|---|---:|---:|---:|---:|")
        for name, search in methods.items():
            cells = []
            for half in ("tune", "test"):
                ranked = await ranked_by(search, halves[half])
                wanted = [fact_ids[i] for i in halves[half]]
                cells += [recall_at(ranked, wanted, 1), recall_at(ranked, wanted, 5)]
            print(f"| {name} | " + " | ".join(f"{c:.1f}%" for c in cells) + " |")
        for name, ranker in (
            ("grep (the question as typed)", None),
            ("BM25 (shared words)", bm25),
        ):
            cells = []
            for half in ("tune", "test"):
                wanted = [fact_ids[i] for i in halves[half]]
                if ranker is None:
                    ranked = await grep_ranked(halves[half])
                else:
                    ranked = [ranker.rank(facts[i][2]) for i in halves[half]]
                cells += [recall_at(ranked, wanted, 1), recall_at(ranked, wanted, 5)]
            print(f"| {name} | " + " | ".join(f"{c:.1f}%" for c in cells) + " |")
        print()
    finally:
        await store.close()


VOCAB = (
    "deploy server budget meeting family travel invoice recipe garden python async cache "
    "review contract schedule doctor flight music river stone lamp orbit cedar pixel quartz "
    "maple ember delta harbor signal copper velvet lantern meadow thunder crystal falcon"
).split()


async def latency_table(folder: Path, sizes: list[int], queries: int) -> None:
    embedder = default_embedder()
    questions = [q for _, _, q in load_facts()]
    rows = []
    for size in sizes:
        path = folder / f"big-{size}.db"
        store = await SQLiteStore(path).open()
        await store.create_session(
            SessionRecord(
                id="big",
                model="m",
                agent="a",
                parent_id=None,
                system_prompt="p",
                config_json="{}",
                created_at=time.time(),
            )
        )
        rng = random.Random(3)
        for start in range(0, size, 5_000):
            batch = tuple(
                NewMessage(
                    id=f"m{i:08d}",
                    role="user" if i % 2 == 0 else "assistant",
                    parts=(NewPart(TextPart(text=" ".join(rng.choices(VOCAB, k=25))), 40),),
                    created_at=time.time(),
                )
                for i in range(start, min(size, start + 5_000))
            )
            await store.append("big", batch)
        with sqlite3.connect(path) as raw:
            parts = raw.execute("SELECT id, message_id FROM parts ORDER BY id").fetchall()
        gen = np.random.default_rng(1)
        for start in range(0, len(parts), 5_000):
            chunk = parts[start : start + 5_000]
            vectors = gen.standard_normal((len(chunk), embedder.dimensions)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            await store.save_embeddings(
                embedder.name,
                tuple(
                    NewEmbedding("big", body_item(pid * 2), 0, mid, vector_bytes(v.tolist()))
                    for (pid, mid), v in zip(chunk, vectors, strict=True)
                ),
            )
        search = HybridSearch(store, embedder)
        began = time.perf_counter()
        await search.search("warm up the model and the cache", ("big",))
        cold = time.perf_counter() - began
        times = []
        words_only = []
        for n in range(queries):
            q = questions[n % len(questions)]
            began = time.perf_counter()
            await search.search(q, ("big",), limit=10)
            times.append(time.perf_counter() - began)
            began = time.perf_counter()
            await HybridSearch(store, None).search(q, ("big",), limit=10)
            words_only.append(time.perf_counter() - began)
        times.sort()
        words_only.sort()
        rows.append(
            (
                size,
                cold,
                statistics.median(times),
                times[int(len(times) * 0.99) - 1],
                statistics.median(words_only),
            )
        )
        await store.close()
    print("| stored messages | first search (loads vectors) | p50 | p99 | p50 words only |")
    print("|---:|---:|---:|---:|---:|")
    for size, cold, p50, p99, wo in rows:
        print(
            f"| {size:,} | {cold * 1000:.0f} ms | {p50 * 1000:.1f} ms | {p99 * 1000:.1f} ms "
            f"| {wo * 1000:.1f} ms |"
        )
    print()


async def record_turns(db: str, turns: int, embedder: str) -> tuple[float, MnesisSession]:
    rng = random.Random(2)
    session = await MnesisSession.create(
        model=MODEL,
        db_path=db,
        provider=MockProvider(),
        config=MnesisConfig.model_validate(
            {
                "model_overrides": {"context_limit": 1_000_000, "max_output_tokens": 1000},
                "recall": {"embedder": embedder},
            }
        ),
    )
    began = time.perf_counter()
    for _ in range(turns):
        user, reply = filler(rng)
        await session.record(user, reply)
    return turns / (time.perf_counter() - began), session


async def throughput_tables(folder: Path, turns: int, repeat: int) -> None:
    on: list[float] = []
    off: list[float] = []
    catch_up = []
    for r in range(repeat):
        for mode in ("none", "local") if r % 2 == 0 else ("local", "none"):
            db = str(folder / f"rec-{r}-{mode}.db")
            rate, session = await record_turns(db, turns, mode)
            (on if mode == "local" else off).append(rate)
            if mode == "local":
                worker = session._embedding.worker
                assert worker is not None
                texts_before = worker.stats.texts
                began = time.perf_counter()
                await session.wait_for_embeddings()
                spent = time.perf_counter() - began
                catch_up.append(((worker.stats.texts - texts_before) / spent, 2 * turns / spent))
            await session.close()
    print(f"| record() turns/s (median of {repeat}) | embedding off | embedding on | change |")
    print("|---|---:|---:|---:|")
    a, b = statistics.median(off), statistics.median(on)
    print(f"| {turns} turns, SQLite file | {a:,.0f} | {b:,.0f} | {100 * (b - a) / a:+.1f}% |\n")
    print("| backlog catch-up (after the burst) | texts/s | messages/s |\n|---|---:|---:|")
    texts = statistics.median(t for t, _ in catch_up)
    messages = statistics.median(m for _, m in catch_up)
    print(f"| offline default, one worker thread | {texts:,.0f} | {messages:,.0f} |\n")


async def main(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="mnesis-semantic-"))
    try:
        await default_embedder().embed(["load the model"])  # not part of any timing
        if not args.skip_recall:
            await recall_tables(str(folder / "planted.db"), args.turns)
        sizes = [int(s) for s in args.sizes.split(",") if s]
        if sizes:
            await latency_table(folder, sizes, args.queries)
        if args.record_turns:
            await throughput_tables(folder, args.record_turns, args.repeat)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=440)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--record-turns", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-recall", action="store_true")
    asyncio.run(main(parser.parse_args()))
