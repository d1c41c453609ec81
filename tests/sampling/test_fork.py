"""Fork safety: a forked child gets a fresh sampler whose worker thread exports."""

from __future__ import annotations

import json
import os
import select
import time

import pytest
from opentelemetry.trace import Status, StatusCode, set_span_in_context

from tests.sampling.conftest import PipelineFactory


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_exports_its_own_spans(make_pipeline: PipelineFactory) -> None:
    """After a real fork the child's kept spans reach the exporter without a flush, and the
    child does not re-export what its parent held."""
    pipeline = make_pipeline()
    parent_root = pipeline.tracer.start_span("parent request")
    failing = pipeline.tracer.start_span("parent query", context=set_span_in_context(parent_root))
    failing.set_status(Status(StatusCode.ERROR))
    failing.end()  # held by the parent, undecided, at fork time

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe, never return into pytest
        status = 1
        try:
            os.close(read_end)
            with pipeline.tracer.start_as_current_span("child request") as root:
                root.set_status(Status(StatusCode.ERROR))
            deadline = time.monotonic() + 5
            while not pipeline.exported() and time.monotonic() < deadline:
                time.sleep(0.01)  # the restarted worker exports on its own schedule
            names = [span.name for span in pipeline.exported()]
            os.write(
                write_end,
                json.dumps({"names": names, "held": pipeline.processor._buffer.buffered}).encode(),
            )
            status = 0
        finally:
            os._exit(status)

    os.close(write_end)
    ready, _, _ = select.select([read_end], [], [], 15)
    assert ready, "the forked child reported nothing"
    report = json.loads(os.read(read_end, 65536).decode())
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert report == {"names": ["child request"], "held": 0}

    parent_root.end()  # the parent still decides what it held
    pipeline.flush()
    assert sorted(span.name for span in pipeline.exported()) == ["parent query", "parent request"]
