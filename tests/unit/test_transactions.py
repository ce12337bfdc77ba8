"""The transactional-call policy (streams/runtime/transactions.py) against librdkafka's error flags:
retriable calls are made again, an undecided commit is never aborted, anything else is."""
import logging

import pytest
from confluent_kafka import KafkaError, KafkaException

from gatewatch.streams.runtime import transactions

LOG = logging.getLogger("test")
RETRIABLE = KafkaException(KafkaError(KafkaError._TRANSPORT, "coordinator gone", retriable=True))
ABORTABLE = KafkaException(KafkaError(KafkaError._STATE, "stale generation", txn_requires_abort=True))


class Producer:
    """Answers each commit_transaction call with the next of `outcomes` (None: success)."""

    def __init__(self, *outcomes):
        self.outcomes, self.commits, self.aborts = list(outcomes), 0, 0

    def commit_transaction(self, timeout):
        self.commits += 1
        outcome = self.outcomes.pop(0)
        if outcome is not None:
            raise outcome

    def abort_transaction(self, timeout):
        self.aborts += 1


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    monkeypatch.setattr(transactions.time, "sleep", lambda s: None)


def test_a_retriable_commit_is_made_again_until_it_lands():
    p = Producer(RETRIABLE, RETRIABLE, None)
    transactions.commit(p, LOG, "ingest")
    assert (p.commits, p.aborts) == (3, 0)


def test_a_commit_still_retriable_after_the_retries_is_undecided_and_not_aborted():
    p = Producer(RETRIABLE, RETRIABLE, RETRIABLE)
    with pytest.raises(transactions.CommitUndecided, match="ingest: transaction commit undecided"):
        transactions.commit(p, LOG, "ingest")
    assert (p.commits, p.aborts) == (3, 0)


def test_an_abortable_commit_error_is_raised_at_once_for_the_caller_to_abort():
    p = Producer(ABORTABLE)
    with pytest.raises(KafkaException):
        transactions.commit(p, LOG, "ingest")
    assert p.commits == 1
    transactions.abort(p, LOG, ABORTABLE)
    assert p.aborts == 1
