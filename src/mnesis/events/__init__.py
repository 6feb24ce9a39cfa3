"""Events: the bus and the typed payloads."""

from mnesis.events.bus import EventBus, Handler, MnesisEvent

__all__ = ["EventBus", "Handler", "MnesisEvent"]
