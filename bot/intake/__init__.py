"""Consultation intake: questions as data (spec), answer parsing (answers), the flow (flow)."""
