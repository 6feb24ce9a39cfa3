"""Large files as references with structural summaries."""

from mnesis.files.explorers import EXPLORERS, detect_type, explore
from mnesis.files.handler import (
    FileHandleResult,
    LargeFileHandler,
    content_id_of,
    file_status,
)

__all__ = [
    "EXPLORERS",
    "FileHandleResult",
    "LargeFileHandler",
    "content_id_of",
    "detect_type",
    "explore",
    "file_status",
]
