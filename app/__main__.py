"""`python -m app`: the chat window."""

import sys

from app.main import main

sys.exit(main())
