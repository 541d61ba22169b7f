"""An sgbench plugin: two methods registered under the entry-point group ``sgbench.methods``."""
