"""coreml-chat's inference engine: Core ML packages, tokenization, sampling, sessions.

Qt-free and torch-free: it runs a converted package through Core ML on macOS 15+ and through the
NumPy reference runtime everywhere else.
"""
