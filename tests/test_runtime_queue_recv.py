"""Receiver.recv takes seconds; Furiosa's legacy CompletionQueue.recv took milliseconds."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from models import matmul_model

import nnperf
from nnperf.runtime.queue import Receiver


def test_recv_timeout_is_seconds_and_a_millisecond_looking_value_warns() -> None:
    doc = " ".join((Receiver.recv.__doc__ or "").split())
    assert "seconds" in doc and "milliseconds" in doc and "recv(0.1)" in doc
    x = np.ones((1, 16), np.float32)
    submitter, receiver = nnperf.create_queue(matmul_model(), device="cpu(1)")
    try:
        submitter.submit(x, context="a")
        # 5000 "ms" from a ported legacy call: honoured as seconds, with a warning naming the unit
        with pytest.warns(UserWarning, match=r"in seconds.*pass timeout_s=5\b"):
            context, outputs = receiver.recv(5000)
        assert context == "a" and outputs[0].shape == (1, 8)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # an ordinary timeout does not warn
            submitter.submit(x, context="b")
            assert receiver.recv(timeout_s=30)[0] == "b"
            with pytest.raises(TimeoutError, match="within 0.05 s"):
                receiver.recv(timeout_s=0.05)  # nothing outstanding
    finally:
        submitter.close()
        receiver.close()
