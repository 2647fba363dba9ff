"""Many inputs through one loaded harness (core/opa/batches.py): each distinct input evaluated
once, in chunks, several chunks in flight at a time, answers back in the inputs' order."""
import json
import threading

import pytest

from core.opa.batches import MISSING, Batches


def echo(calls, lock=None):
    """An evaluate() that answers each input of the chunk with itself, and records the chunks."""
    def evaluate(data_path, inputs_json):
        chunk = json.loads(inputs_json)
        if lock:
            lock.wait()
        calls.append((data_path, chunk))
        return {str(i): {"seen": x} for i, x in enumerate(chunk) if x != "undefined"}
    return evaluate


def test_each_distinct_input_is_evaluated_once_and_answered_in_order():
    calls = []
    texts = ['{"u":1}', '{"u":2}', '{"u":1}', '"undefined"', '{"u":3}', '{"u":2}', '{"u":4}']
    with Batches(echo(calls), "harness/results", chunk_size=2, workers=2) as batches:
        slots = [batches.add(text) for text in texts]
        answers = batches.answers()
    assert slots == [0, 1, 0, 2, 3, 1, 4]
    assert (batches.distinct, batches.round_trips) == (5, 3)
    evaluated = [x for _, chunk in calls for x in chunk]
    assert sorted(json.dumps(x) for x in evaluated) == ['"undefined"', '{"u": 1}', '{"u": 2}', '{"u": 3}', '{"u": 4}']
    assert {path for path, _ in calls} == {"harness/results"}
    assert [answers[slot] for slot in slots] == [{"seen": {"u": 1}}, {"seen": {"u": 2}}, {"seen": {"u": 1}}, MISSING,
                                                 {"seen": {"u": 3}}, {"seen": {"u": 2}}, {"seen": {"u": 4}}]


def test_chunks_are_in_flight_together():
    """Two chunks wait for each other inside evaluate(): only chunks sent side by side get past."""
    both = threading.Barrier(2, timeout=60)
    calls = []
    with Batches(echo(calls, both), "h", chunk_size=1, workers=2) as batches:
        batches.add("1")
        batches.add("2")
        assert batches.answers() == [{"seen": 1}, {"seen": 2}]


def test_the_first_failure_is_raised():
    def evaluate(data_path, inputs_json):
        raise RuntimeError(f"refused {inputs_json}")

    with Batches(evaluate, "h", chunk_size=1, workers=1) as batches:
        batches.add("1")
        with pytest.raises(RuntimeError, match=r"refused \[1\]"):
            batches.answers()
