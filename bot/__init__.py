"""Clinic bot core: configuration, database, content, and the services handlers call."""

import os

# python-telegram-bot 22 reports time periods (RetryAfter.retry_after, ...) as int with a
# deprecation warning on every access, even inside its own RetryAfter constructor; opting in to
# the future timedelta type silences that. Our code accepts both types.
os.environ.setdefault("PTB_TIMEDELTA", "1")
