"""Shared fixtures: the digits splits and a single torch thread (fast, reproducible timings)."""

from __future__ import annotations

import pytest
import torch

from fl_agent.learning.data import DatasetSplits, load_dataset, split_dataset


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def digits() -> DatasetSplits:
    return split_dataset(load_dataset("digits"), seed=0)
