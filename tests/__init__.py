"""The test suite as a package, so that pytest names its modules ``tests.engine.…``: without this
file ``tests/engine`` was imported as the package ``engine`` and shadowed the real one, whose
modules then came from wherever the installed (editable) package points, not from this checkout."""
