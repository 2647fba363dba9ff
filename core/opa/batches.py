"""One loaded harness evaluated over many inputs: each distinct input once, in chunks, several
chunks at a time, so OPA works on every core while Gavel reads the next inputs.

Inputs arrive as JSON text (a replay reads them from Postgres as `input::text`) and go to OPA as
they are: equal text is one input, evaluated once, and nothing is parsed and dumped again on the
way. The harness answers `{i: answer}` for the i-th input of its array, as replay's RESULTS rule.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

MISSING = object()  # no answer: the document was undefined for that input


class Batches:
    def __init__(self, evaluate: Callable[[str, str], Any], data_path: str, *, chunk_size: int,
                 workers: int | None = None):
        """`evaluate(data_path, inputs_json)` is the client's (SandboxServer or LocalOpa)."""
        self.evaluate, self.data_path, self.chunk_size = evaluate, data_path, max(1, chunk_size)
        self.slots: dict[str, int] = {}  # input text -> its place among the distinct inputs
        self.chunk: list[str] = []
        self.sent: list[tuple[int, Future]] = []  # (inputs in the chunk, its answer)
        self.pool = ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 2,
                                       thread_name_prefix="gavel-batches")

    def __enter__(self) -> Batches:
        return self

    def __exit__(self, *exc) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    @property
    def distinct(self) -> int:
        return len(self.slots)

    @property
    def round_trips(self) -> int:
        return len(self.sent)

    def add(self, input_json: str) -> int:
        """The input's slot; a new input is queued, and its chunk sent once full."""
        slot = self.slots.get(input_json)
        if slot is None:
            slot = self.slots[input_json] = len(self.slots)
            self.chunk.append(input_json)
            if len(self.chunk) >= self.chunk_size:
                self._send()
        return slot

    def _send(self) -> None:
        chunk, self.chunk = self.chunk, []
        self.sent.append((len(chunk), self.pool.submit(self.evaluate, self.data_path, f"[{','.join(chunk)}]")))

    def answers(self) -> list[Any]:
        """Each distinct input's answer by slot (MISSING when undefined), once all have come
        back. The first failure is raised; the chunks not yet sent are cancelled."""
        if self.chunk:
            self._send()
        found: list[Any] = []
        try:
            for size, future in self.sent:
                answers = future.result() or {}
                found.extend(answers.get(str(i), MISSING) for i in range(size))
        except BaseException:
            self.pool.shutdown(wait=False, cancel_futures=True)
            raise
        return found
