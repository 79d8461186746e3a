"""Every op's second derivative, one table: test_higher_order.py's cases (the first ops)
and test_ops_more.py's (the ops a PyTorch user reaches for next), each against central
differences of its first gradient and against torch.autograd.grad taken twice."""
import pytest
from hypothesis import given, strategies as st

from test_higher_order import (CASES as FIRST_CASES,
                               check_second_derivative_against_central_differences,
                               check_second_derivative_against_torch)
from test_ops_more import CASES as MORE_CASES

CASES = {**FIRST_CASES, **{name if name not in FIRST_CASES else f"{name} (tg.{name})": case
                           for name, case in MORE_CASES.items()}}


@pytest.mark.parametrize("name", CASES)
@given(data=st.data())
def test_second_derivative_matches_central_differences_of_the_first_gradient(name, data):
    check_second_derivative_against_central_differences(data.draw(CASES[name]))


@pytest.mark.parametrize("name", CASES)
@given(data=st.data())
def test_second_derivative_equals_torch_autograd_grad_taken_twice(name, data):
    check_second_derivative_against_torch(data.draw(CASES[name]))
