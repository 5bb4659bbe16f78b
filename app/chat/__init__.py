"""One conversation on screen: controller, messages view, composer, Markdown, status line, engine bridge."""
