"""Clinic bot core: configuration, database, content, and the services handlers call."""
