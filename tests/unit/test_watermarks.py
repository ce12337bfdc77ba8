"""`watermarks` asks again while a just-made partition's leader is unknown to the client (it reports
NOT_LEADER_FOR_PARTITION, not flagged retriable: a fresh-clone CI run failed on it), and gives up
at once, as one line, on an error retrying cannot cure."""
import pytest
from confluent_kafka import KafkaError, KafkaException

from gatewatch.streams.runtime.consuming import watermarks
from gatewatch.streams.runtime.errors import GatewatchError


class LeaderSettles:
    """Stands in for the consumer's one call: raises `errors` in turn, then answers."""

    def __init__(self, *errors: int):
        self.errors, self.calls = list(errors), 0

    def get_watermark_offsets(self, tp, timeout):
        self.calls += 1
        if self.errors:
            raise KafkaException(KafkaError(self.errors.pop(0)))
        return (3, 17)


@pytest.mark.parametrize("code", [KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
                                  KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._TIMED_OUT])
def test_a_leader_not_known_yet_is_asked_again(code):
    c = LeaderSettles(code, code)
    assert watermarks(c, "t", 0) == (3, 17)
    assert c.calls == 3


def test_an_error_retrying_cannot_cure_is_one_line_at_once():
    c = LeaderSettles(KafkaError.TOPIC_AUTHORIZATION_FAILED)
    with pytest.raises(GatewatchError, match=r"reading the offsets of t\[2\]: .*") as e:
        watermarks(c, "t", 2)
    assert c.calls == 1 and "\n" not in str(e.value)


def test_it_gives_up_after_its_timeout():
    c = LeaderSettles(*[KafkaError.NOT_LEADER_FOR_PARTITION] * 1000)
    with pytest.raises(GatewatchError, match="NOT_LEADER|[Nn]ot leader"):
        watermarks(c, "t", 0, timeout_s=0.5)
    assert 1 < c.calls < 10
