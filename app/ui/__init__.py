"""Shared look: the theme and the widgets the Settings panes share."""
