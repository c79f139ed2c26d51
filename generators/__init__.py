"""Pure renderers: each takes the definitions and returns data or text, and writes nothing."""
