from gatewatch.streams.cli.main import entrypoint

entrypoint()
