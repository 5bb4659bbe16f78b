"""Stored conversations: the SQLite store, the sidebar's list model, the sidebar."""
