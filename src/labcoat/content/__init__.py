"""Content: the schema (models), the YAML loader and the catalog. The only code that reads content dirs."""
