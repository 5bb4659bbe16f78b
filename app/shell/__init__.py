"""The window's frame: main window, welcome page, Settings dialog, the qasync event loop."""
