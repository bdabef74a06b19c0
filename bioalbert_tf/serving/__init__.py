"""Serving: task and encoder SavedModels that take raw text, and keras-hub presets."""
