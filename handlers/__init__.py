"""Thin Telegram handlers: parse the update, call bot/, render the reply.

Each feature module exposes `register(application, services)`; bot.app calls them in order.
"""
