"""Kafka transactions as librdkafka's transactional API prescribes them: a call that failed with a
retriable error is made again (a coordinator that died mid-commit: its successor answers the next
call); a commit whose outcome is unknown is never followed by an abort; any other failure aborts.
"""
from __future__ import annotations

import logging
import time

from confluent_kafka import KafkaException

from gatewatch.streams.runtime.errors import GatewatchError
from gatewatch.streams.runtime.logs import log_event


class CommitUndecided(GatewatchError):
    """commit_transaction failed retriably past its retries: it may still land."""


def retried(call, log: logging.Logger, attempts: int = 3):
    """call() again while librdkafka calls its error retriable; a commit that did land answers the
    repeat with success."""
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except KafkaException as e:
            if attempt == attempts or not e.args[0].retriable():
                raise
            log_event(log, "transactional call retried", logging.WARNING, error=e.args[0].str(), attempt=attempt)
            time.sleep(attempt)  # a new coordinator is elected within seconds


def commit(producer, log: logging.Logger, what: str) -> None:
    """commit_transaction, retried. Still retriable after the retries, the commit may yet land and
    no abort may follow it: the worker stops, and a restart reads the offsets once it is decided."""
    try:
        retried(lambda: producer.commit_transaction(30), log)
    except KafkaException as e:
        if e.args[0].retriable():
            raise CommitUndecided(f"{what}: transaction commit undecided: {e.args[0].str()}") from None
        raise


def abort(producer, log: logging.Logger, cause: BaseException) -> None:
    log_event(log, "transaction aborted", logging.ERROR, error=f"{type(cause).__name__}: {cause}")
    for attempt in range(3):
        try:
            producer.abort_transaction(30)
            return
        except KafkaException as e:  # fenced (a zombie): the coordinator already aborted it
            log_event(log, "abort refused", logging.WARNING, error=str(e), attempt=attempt + 1)
            if not e.args[0].retriable():  # retriable: no coordinator yet, librdkafka says to call again
                return
