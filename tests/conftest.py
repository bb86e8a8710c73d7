"""Fixtures shared by several test files."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():  # type: ignore[no-untyped-def]
    # Tiny models gain nothing from threads, and on a busy 2-core box OpenMP's hand-offs make each
    # small op cost milliseconds; one thread keeps a file fast everywhere.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
