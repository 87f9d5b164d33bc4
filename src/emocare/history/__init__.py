"""The private mood history: sessions, one mood sample a second, care shown and feedback.

Plain Python over SQLAlchemy; no Flask, no images (there is no column that could hold one).
"""

from .store import HistoryStore
from .writer import HistorySession, HistoryWriter

__all__ = ["HistorySession", "HistoryStore", "HistoryWriter"]
