"""Built-in task definitions (versioned YAML)."""
