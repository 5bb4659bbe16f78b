"""coreml-chat's desktop application (PySide6 on qasync)."""
