"""Database: typed models, the async engine and session factory, migrations, repositories."""

from bot.db.engine import Database
from bot.db.models import Base, Patient

__all__ = ["Base", "Database", "Patient"]
