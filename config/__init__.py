"""Configuration: the one settings object and the domain data files (YAML) with their loaders."""
