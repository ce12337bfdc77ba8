"""Default policies, executor and quality configs, and simulation scenarios: data files, installed
with the package as gatewatch.configs so an installed gatewatch finds them (streams.runtime.paths)."""
