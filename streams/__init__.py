"""Runtime: CLI, Kafka plumbing, embedded broker, topic catalogue, workers."""
