"""Terminal rendering: sanitizing, live Markdown, spinner."""
