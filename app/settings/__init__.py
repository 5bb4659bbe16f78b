"""The app's settings: the settings file."""
