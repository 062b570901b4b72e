"""Backends behind one Protocol, chosen by a plain dict keyed by BackendKind."""

from inspection.backends.base import Backend, BackendKind, open_backend, softmax

__all__ = ["Backend", "BackendKind", "open_backend", "softmax"]
