"""Command-line entry points for each training stage (one CLI per stage, dataclass configs with presets)."""
