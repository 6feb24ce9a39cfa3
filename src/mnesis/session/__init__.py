"""One conversation with a model: the :class:`MnesisSession` facade and its parts."""

from mnesis.session.facade import DEFAULT_SYSTEM_PROMPT, MnesisSession
from mnesis.session.tools import ToolHandler
from mnesis.session.turn import OnPart

__all__ = ["DEFAULT_SYSTEM_PROMPT", "MnesisSession", "OnPart", "ToolHandler"]
