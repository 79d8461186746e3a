"""Safety nets: each well-known autodiff/BPTT mistake is caught when it happens and
explained. Error messages are checked on their key phrases, word for word."""
import gc
import warnings
import weakref

import numpy as np
import pytest

import tinygraph as tg
from tinygraph.engine import Op, toposort


def _leaf(shape, seed=0, name=None):
    data = np.random.default_rng(seed).standard_normal(shape)
    return tg.tensor(data, requires_grad=True, name=name)


# ---- in-place changes under a live graph --------------------------------------------
def test_assigning_data_of_a_saved_leaf_bumps_its_version_and_backward_refuses():
    x, W = _leaf((3, 4), 0, "x"), _leaf((4, 5), 1, "W")
    loss = (x @ W).tanh().sum()
    W.data = W.data - 0.1
    with pytest.raises(tg.ModifiedError) as err:
        loss.backward()
    message = str(err.value)
    assert "of 'matmul'" in message and "'W'" in message
    assert "is at version 1; expected version 0" in message
    assert x.grad is None and W.grad is None  # nothing was half-done


def test_in_place_update_through_the_tensor_api_fails_while_the_graph_needs_the_array():
    W = _leaf((4, 4), 2, "W_aa")
    loss = (W * W).sum()
    with pytest.raises(ValueError, match="read-only"):
        W.data -= 0.5  # a NumPy write into the array the graph saved
    loss.backward()
    np.testing.assert_array_equal(W.grad, 2 * W.data)
    W.data -= 0.5  # after backward the graph lets the array go: training loops work
    assert W._version == 1


def test_a_node_recorded_before_an_assignment_is_caught_among_nodes_recorded_after_it():
    # backward checks versions only on nodes older than the last .data assignment
    W = _leaf((4, 4), 6, "W")
    W.data = W.data * 2  # before any node: nothing to report later
    early = W * W
    W.data = W.data + 1
    late = (W * W).sum()
    late.backward()  # recorded after the assignment: fine
    assert np.allclose(W.grad, 2 * W.data)
    with pytest.raises(tg.ModifiedError, match="of 'mul'"):
        (early.sum() + W * 3).sum().backward()  # only early's mul is stale


def test_changing_an_input_that_no_op_saved_is_allowed():
    x = _leaf((3,), 3)
    loss = (x + 1).sum()  # add saves no arrays
    x.data = x.data * 2
    loss.backward()
    assert np.array_equal(x.grad, np.ones(3))


def test_assigning_data_of_a_saved_output_is_detected():
    x = _leaf((3,), 4)
    h = x.tanh()
    loss = (h + 2).sum()  # add saves nothing: only tanh's own saved output is at stake
    h.data = np.zeros(3)
    with pytest.raises(tg.ModifiedError, match="the output .* of 'tanh'"):
        loss.backward()


def test_arrays_saved_for_backward_are_read_only():
    x = _leaf((2, 3), 5)
    h = x.tanh()
    with pytest.raises(ValueError, match="read-only"):
        h.data[0, 0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        np.add(h.data, 1, out=h.data)


def test_outputs_computed_without_grad_stay_writable():
    with tg.no_grad():
        h = _leaf((2, 3), 6).tanh()
    h.data[0, 0] = 1.0
    assert h.data[0, 0] == 1.0


# ---- anomaly mode ----------------------------------------------------------------
def test_anomaly_mode_reports_the_first_non_finite_value_in_forward_order():
    x = tg.tensor(np.array([-1.0, 2.0]), requires_grad=True)
    with pytest.raises(tg.AnomalyError) as err:
        with tg.detect_anomaly(), np.errstate(invalid="ignore"):
            y = tg.log(x)        # NaN is born here ...
            (y * 3).exp().sum()  # ... and would only flow on from here
    message = str(err.value)
    assert message.startswith("'log' produced a non-finite value")
    assert "first op to do so in forward order" in message
    assert "input 0: shape (2,), range [-1, 2]" in message
    assert "test_safety.py:" in message  # the user's line, not the engine's


def test_anomaly_mode_names_the_op_whose_backward_made_a_non_finite_gradient():
    x = tg.tensor(np.array([0.0, 4.0]), requires_grad=True)
    with tg.detect_anomaly(), np.errstate(divide="ignore"):
        y = (x ** 0.5).sum()
        with pytest.raises(tg.AnomalyError, match="the backward of 'pow' .*test_safety.py"):
            y.backward()


def test_anomaly_mode_is_off_by_default_and_records_nothing():
    x = _leaf((2,), 7)
    y = x.tanh()
    assert y.op.site is None
    with tg.detect_anomaly():
        z = x.tanh()
    assert "test_safety.py" in z.op.site


# ---- what a graph costs ------------------------------------------------------------
def _unrolled_loss(T, W_aa):
    a = tg.tensor(np.zeros((2, 8)))
    for _ in range(T):
        a = (a @ W_aa + 1.0).tanh()
    return a.sum()


def test_graph_stats_count_nodes_saved_arrays_and_depth():
    W_aa = _leaf((8, 8), 8)
    stats = tg.graph_stats(_unrolled_loss(10, W_aa))
    assert stats.nodes == 3 * 10 + 1  # matmul, add, tanh per step, then sum
    assert stats.depth == 31
    # each step saves a<t> once (tanh's output, which the next matmul saves too)
    # plus W_aa and a<0>
    assert stats.saved_arrays == 10 + 2
    assert stats.saved_bytes == 8 * (10 * 2 * 8 + 8 * 8 + 2 * 8)
    assert "31 nodes" in str(stats)


def test_graph_memory_grows_linearly_with_the_number_of_steps():
    W_aa = _leaf((8, 8), 9)
    small = tg.graph_stats(_unrolled_loss(10, W_aa)).saved_bytes
    large = tg.graph_stats(_unrolled_loss(100, W_aa)).saved_bytes
    per_step = 2 * 8 * 8
    assert large - small == 90 * per_step


def test_saved_arrays_are_released_when_the_last_reference_to_the_loss_goes():
    W_aa = _leaf((8, 8), 10)
    loss = _unrolled_loss(20, W_aa)
    saved = [weakref.ref(node.saved[0]) for node in toposort(loss.op)
             if isinstance(node, Op) and isinstance(node.saved[0], np.ndarray)]  # tanh's a<t>
    assert len(saved) == 20 and all(ref() is not None for ref in saved)
    history = [loss]  # the leak learners write: a list of losses keeps their graphs
    del loss
    gc.collect()
    assert all(ref() is not None for ref in saved)
    history.clear()
    gc.collect()
    assert all(ref() is None for ref in saved)


def test_backward_releases_saved_arrays_as_it_goes():
    W_aa = _leaf((8, 8), 11)
    loss = _unrolled_loss(5, W_aa)
    loss.backward()
    assert tg.graph_stats(loss).saved_arrays == 0


# ---- errors that explain -----------------------------------------------------------
def test_carrying_a_hidden_state_across_batches_explains_detach():
    W_aa = _leaf((3, 3), 12, "W_aa")
    a = tg.tensor(np.ones((1, 3)))
    a = (a @ W_aa).tanh()
    a.sum().backward()          # batch 1
    a = (a @ W_aa).tanh()       # batch 2 continues from batch 1's graph
    with pytest.raises(tg.GraphFreedError) as err:
        a.sum().backward()
    message = str(err.value)
    assert "call backward(retain_graph=True) the first time" in message
    assert "detach that state instead (a = a.detach())" in message
    assert "retain_graph=True would only hide the problem" in message


def test_backward_on_a_loss_that_depends_on_no_parameter_says_so():
    loss = tg.tensor(np.ones(3)).sum()
    with pytest.raises(RuntimeError, match="does not require grad: no input of the computation"):
        loss.backward()


def test_a_parameter_the_loss_does_not_use_keeps_grad_none():
    used, unused = _leaf((3,), 13), _leaf((3,), 14)
    (used * 2).sum().backward()
    assert used.grad is not None
    assert unused.grad is None  # None, not zeros: it took no part


def test_integer_tensors_cannot_require_grad():
    with pytest.raises(TypeError, match="only floating-point tensors can require grad"):
        tg.tensor([1, 2, 3], requires_grad=True)
    t = tg.tensor([1, 2, 3])
    with pytest.raises(TypeError, match="only floating-point tensors can require grad"):
        t.requires_grad = True


def test_gradcheck_warns_on_float32_inputs():
    x = tg.tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    with pytest.warns(UserWarning, match="need float64 to be meaningful"):
        try:
            tg.gradcheck(lambda x: x * 2, [x])
        except tg.GradcheckError:
            pass


def test_no_warning_for_float64_gradcheck():
    x = _leaf((3,), 15)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tg.gradcheck(lambda x: x * 2, [x])


def _one_training_step(model_W, optimizer):
    optimizer.zero_grad()
    (model_W * model_W).sum().backward()


def test_clipping_after_the_optimizer_step_warns():
    W = tg.nn.Parameter(np.ones(3), name="W")
    optimizer = tg.optim.SGD([W], lr=0.1)
    _one_training_step(W, optimizer)
    optimizer.step()
    with pytest.warns(UserWarning, match="called after optimizer.step\\(\\) in the same iteration"):
        tg.optim.clip_grad_norm_([W], max_norm=1.0)
    with pytest.warns(UserWarning, match="Clip between loss.backward\\(\\) and optimizer.step\\(\\)"):
        tg.optim.clip_grad_value_([W], clip_value=1.0)


def test_clipping_before_the_step_is_silent():
    W = tg.nn.Parameter(np.ones(3), name="W")
    optimizer = tg.optim.SGD([W], lr=0.1)
    for _ in range(2):  # the step of iteration 1 must not haunt iteration 2
        _one_training_step(W, optimizer)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            tg.optim.clip_grad_norm_([W], max_norm=1.0)
        optimizer.step()


def test_a_custom_op_returning_a_wrongly_shaped_gradient_is_caught_at_the_leaf():
    class Broken(Op):
        def forward(self, x):
            return x * 2

        def backward(self, g, out, x):
            return g.sum()  # forgot to keep x's shape

    x = _leaf((3,), 16)
    with pytest.raises(tg.ShapeError, match="returned the wrong shape"):
        Broken.apply(x).sum().backward()
    assert x.grad is None


def test_an_optimizer_step_between_forward_and_backward_is_detected():
    W = tg.nn.Parameter(np.ones((3, 3)), name="W_aa")
    optimizer = tg.optim.SGD([W], lr=0.1)
    (W * 2.0).sum().backward()             # last iteration's gradient is still there
    loss = (tg.tensor(np.ones((2, 3))) @ W).tanh().sum()
    optimizer.step()                       # changes W while `loss` still needs it
    with pytest.raises(tg.ModifiedError, match="'W_aa', shape \\(3, 3\\)\\) of 'matmul'"):
        loss.backward()


# ---- NumPy writes into an array a live graph saved ---------------------------------
@pytest.mark.parametrize("write", [
    lambda W: W.data.__setitem__(Ellipsis, 5.0),      # W.data[...] = 5
    lambda W: W.numpy().__setitem__(0, 1.0),          # W.numpy()[0] = 1
    lambda W: W.data.__imul__(2.0),                   # W.data[:] *= 2
    lambda W: np.add(W.data, 1.0, out=W.data),
], ids=["setitem", "numpy", "imul", "ufunc-out"])
def test_a_numpy_write_into_a_saved_leaf_fails_at_once_and_changes_nothing(write):
    W = tg.tensor(np.arange(4.0), requires_grad=True, name="W")
    loss = (W * W).sum()
    with pytest.raises(ValueError, match="read-only"):
        write(W)
    np.testing.assert_array_equal(W.data, np.arange(4.0))
    loss.backward()
    np.testing.assert_array_equal(W.grad, 2 * np.arange(4.0))


def test_after_backward_a_training_loop_writes_into_its_weights_in_place():
    W = tg.tensor(np.ones(3), requires_grad=True)
    for _ in range(3):
        loss = (W * W).sum()
        loss.backward()
        W.data -= 0.25 * W.grad  # micrograd's update, in place
        W.grad = None
    np.testing.assert_allclose(W.data, 0.5 ** 3)


def test_a_graph_kept_with_retain_graph_keeps_its_arrays_read_only_until_it_goes():
    W = tg.tensor(np.ones(3), requires_grad=True)
    loss = (W * W).sum()
    loss.backward(retain_graph=True)
    with pytest.raises(ValueError, match="read-only"):
        W.data[0] = 2.0
    del loss
    gc.collect()
    W.data[0] = 2.0  # the graph is gone: nothing can be computed from the old values


def test_a_graph_dropped_without_backward_lets_its_arrays_go():
    W = tg.tensor(np.ones(3), requires_grad=True)
    (W * 2.0).sum()  # never backpropagated
    gc.collect()
    W.data[0] = 2.0


def test_two_live_graphs_keep_a_weight_read_only_until_both_are_done():
    W = tg.tensor(np.ones(3), requires_grad=True)
    first, second = (W * W).sum(), (W * 3.0).sum()
    first.backward()
    with pytest.raises(ValueError, match="read-only"):
        W.data[0] = 2.0  # the second graph still needs W's values
    second.backward()
    np.testing.assert_array_equal(W.grad, 2 * np.ones(3) + 3)
    W.data[0] = 2.0


def test_a_numpy_array_the_user_passed_in_is_guarded_as_long_as_the_graph_needs_it():
    values, batch = np.ones(3), np.arange(3.0)
    W, x = tg.tensor(values, requires_grad=True), tg.tensor(batch)  # both share memory
    loss = (W * x).sum()
    with pytest.raises(ValueError, match="read-only"):
        batch[0] = 10.0  # would silently change W's gradient
    loss.backward()
    np.testing.assert_array_equal(W.grad, [0.0, 1.0, 2.0])
    batch[0] = 10.0
    values[0] = 10.0


def test_an_array_that_was_read_only_before_stays_read_only_after():
    frozen = np.ones(3)
    frozen.setflags(write=False)
    W = tg.tensor(frozen, requires_grad=True)
    (W * W).sum().backward()
    assert not frozen.flags.writeable


def test_assigning_new_data_is_always_allowed_and_caught_by_backward_if_it_matters():
    W = tg.tensor(np.ones(3), requires_grad=True, name="W")
    loss = (W * W).sum()
    W.data = np.zeros(3)  # a new array: the graph keeps the old one
    with pytest.raises(tg.ModifiedError, match="'W'"):
        loss.backward()
