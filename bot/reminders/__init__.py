"""Appointments and the reminder engine: plans (content), planner, service, dispatcher."""
