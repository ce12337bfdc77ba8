"""Event times for tests that go through a broker: a real Kafka refuses record timestamps more than
message.timestamp.after.max.ms (1 h) ahead of its clock and deletes records older than the topics'
retention (7 d), so broker-bound test data lives in the recent past, hour-aligned."""
import time

RECENT_MS = (int(time.time()) // 3600 - 2) * 3_600_000
