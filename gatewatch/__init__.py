"""gatewatch: a streaming release-safety data plane on Kafka.

The source folders stay where the design puts them (streams/, processors/, sinks/, schemas/);
pyproject.toml installs them under this one import name: gatewatch.streams, gatewatch.processors,
gatewatch.sinks, gatewatch.schemas.
"""
