"""The command line: thin wrappers that parse strings, call the library, and emit one Report."""
