"""Guided multi-execution: spend repeated executions where Walking Noise says the network is fragile."""

from hil.guided.allocation import (
    allocate_greedy,
    allocate_inverse_mu,
    largest_remainder,
    predict_accuracy,
    uniform_allocation,
)

__all__ = [
    "allocate_greedy",
    "allocate_inverse_mu",
    "largest_remainder",
    "predict_accuracy",
    "uniform_allocation",
]
