"""Built-in surrogate-gradient methods: one file per method, the file stem is its name."""
