"""tg.checkpoint: the same values and gradients as the plain run, without keeping fn's graph."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import rnn
import tinygraph as tg
from tinygraph import functional as F
from tinygraph import nn

TOL = dict(rtol=1e-12, atol=1e-12)


def mlp_block():
    tg.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.Linear(6, 3))


def grads_of(tensors):
    return [None if t.grad is None else np.array(t.grad) for t in tensors]


def compare(run, tensors):
    """run(wrap) twice, with wrap = calling fn directly and wrap = tg.checkpoint: the
    losses and every tensor's gradient agree."""
    results = []
    for wrap in (lambda fn, *args: fn(*args), tg.checkpoint):
        for t in tensors:
            t.grad = None
        loss = run(wrap)
        loss.backward()
        results.append((loss.item(), grads_of(tensors)))
    (plain, plain_grads), (ckpt, ckpt_grads) = results
    np.testing.assert_allclose(ckpt, plain, **TOL)
    for a, b in zip(ckpt_grads, plain_grads):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_allclose(a, b, **TOL)
    return plain_grads


def test_gradients_reach_the_inputs_and_the_parameters_fn_closes_over():
    block = mlp_block()
    x = tg.tensor(np.random.default_rng(0).normal(size=(5, 4)), requires_grad=True)
    grads = compare(lambda wrap: wrap(lambda h: block(h).tanh(), x).sum(),
                    [x, *block.parameters()])
    assert all(g is not None and np.any(g) for g in grads)


@given(shape=st.sampled_from([(), (0,), (3,), (2, 0), (2, 3)]), seed=st.integers(0, 100))
def test_gradients_equal_the_plain_run_for_any_shape(shape, seed):
    rng = np.random.default_rng(seed)
    x = tg.tensor(rng.normal(size=shape), requires_grad=True)
    w = tg.tensor(rng.normal(size=shape), requires_grad=True)
    compare(lambda wrap: (wrap(lambda a: (a * w).tanh() * a.exp(), x) * 2).sum(), [x, w])


def test_a_computed_input_passes_its_gradient_on_into_the_outer_graph():
    w = tg.tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True)
    v = tg.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    compare(lambda wrap: wrap(lambda h: (h * h * v).tanh(), (w * 3).exp()).sum(), [w, v])


def test_a_computed_tensor_fn_closes_over_gets_its_gradient_too():
    w = tg.tensor(np.array([0.5, -1.0]), requires_grad=True)
    x = tg.tensor(np.array([1.0, 3.0]), requires_grad=True)

    def run(wrap):
        outside = (w * 2).sigmoid()  # read by fn, not passed to it
        return wrap(lambda a: a * outside + outside, x).sum()
    compare(run, [w, x])


def test_an_input_passed_and_also_closed_over_gets_both_contributions():
    x = tg.tensor(np.array([0.3, -0.7]), requires_grad=True)
    compare(lambda wrap: wrap(lambda a: a * x, x).sum(), [x])


def test_several_outputs_come_back_as_a_tuple_with_their_gradients():
    x = tg.tensor(np.random.default_rng(1).normal(size=(2, 3)), requires_grad=True)

    def fn(a):
        return a.tanh(), (a * a).sum()

    def run(wrap):
        first, second = wrap(fn, x)
        assert first.shape == (2, 3) and second.shape == ()
        return (first * 3).sum() + second
    compare(run, [x])


def test_an_output_left_unused_contributes_nothing():
    x = tg.tensor(np.array([1.0, 2.0]), requires_grad=True)
    compare(lambda wrap: wrap(lambda a: (a.exp(), a * 5), x)[0].sum(), [x])


def test_rnn_segments_checkpointed_equal_the_plain_unroll():
    tg.manual_seed(0)
    model = rnn.ElmanRNN(3, 5, 4)
    rng = np.random.default_rng(0)
    xs, targets = rng.normal(size=(12, 2, 3)), rng.integers(0, 4, size=(12, 2))

    def segment(a_prev, x, y):
        states = rnn.unroll(model, x, a_prev)
        logits = tg.stack([model.output_layer(a) for a in states])
        return F.cross_entropy(logits, y, reduction="sum"), states[-1]

    def run(wrap):
        a, total = tg.tensor(np.zeros((2, 5))), 0.0
        for start in range(0, 12, 4):
            loss, a = wrap(segment, a, tg.tensor(xs[start:start + 4]), targets[start:start + 4])
            total = total + loss
        return total
    grads = compare(run, list(model.parameters()))
    assert all(np.any(g) for g in grads)


def test_the_graph_behind_a_checkpoint_is_one_node():
    block = mlp_block()
    x = tg.tensor(np.ones((2, 4)), requires_grad=True)
    plain = tg.graph_stats(block(x).sum()).nodes
    checkpointed = tg.graph_stats(tg.checkpoint(block, x).sum()).nodes
    assert checkpointed == 2 and plain > checkpointed


def test_dropout_inside_is_recomputed_with_the_same_mask():
    block = mlp_block()
    x = tg.tensor(np.random.default_rng(2).normal(size=(50, 4)), requires_grad=True)

    def run(wrap):
        tg.manual_seed(5)
        return wrap(lambda h: F.dropout(block(h), 0.5, training=True), x).sum()
    compare(run, [x, *block.parameters()])


def test_the_generator_goes_on_from_where_the_forward_left_it():
    x = tg.tensor(np.ones(100), requires_grad=True)
    tg.manual_seed(1)
    y = tg.checkpoint(lambda a: F.dropout(a, 0.5, training=True), x)
    after_forward = tg.random.generator().bit_generator.state
    y.sum().backward()
    assert tg.random.generator().bit_generator.state == after_forward


def test_without_anything_requiring_grad_it_is_fn_itself():
    x = tg.tensor(np.ones(3))
    out = tg.checkpoint(lambda a: a * 2, x)
    assert not out.requires_grad and out.op is None
    with tg.no_grad():
        w = tg.tensor(np.ones(3), requires_grad=True)
        assert tg.checkpoint(lambda a: a * w, x).op is None


def test_a_second_backward_needs_retain_graph_as_usual():
    x = tg.tensor(np.array([1.0, 2.0]), requires_grad=True)
    loss = tg.checkpoint(lambda a: (a * a).sum(), x)
    loss.backward(retain_graph=True)
    loss.backward()
    np.testing.assert_allclose(x.grad, 2 * 2 * x.data)
    with pytest.raises(tg.GraphFreedError):
        loss.backward()


def test_tg_grad_through_a_checkpoint_changes_no_grad():
    w = tg.tensor(np.array([1.0, -2.0]), requires_grad=True)
    x = tg.tensor(np.array([0.5, 0.25]), requires_grad=True)
    (gx,) = tg.grad(tg.checkpoint(lambda a: (a * w).tanh(), x).sum(), [x])
    np.testing.assert_allclose(gx.data, w.data * (1 - np.tanh(x.data * w.data) ** 2), **TOL)
    assert w.grad is None and x.grad is None


def test_a_recorded_backward_through_a_checkpoint_is_refused():
    x = tg.tensor(np.array([1.0, 2.0]), requires_grad=True)
    with pytest.raises(RuntimeError, match="create_graph=True.*cannot pass through"):
        tg.grad(tg.checkpoint(lambda a: (a * a).sum(), x), [x], create_graph=True)


def test_fn_returning_no_tensor_is_refused():
    x = tg.tensor(np.ones(2), requires_grad=True)
    with pytest.raises(TypeError, match="must return a tensor or a tuple of tensors, not int"):
        tg.checkpoint(lambda a: 3, x)


def test_a_parameter_changed_before_backward_raises_as_a_saved_array_would():
    w = tg.tensor(np.array([1.0, 2.0]), requires_grad=True)
    loss = tg.checkpoint(lambda a: (a * w).sum(), tg.tensor(np.ones(2), requires_grad=True))
    w.data = w.data * 2
    with pytest.raises(tg.ModifiedError):
        loss.backward()


def test_gradcheck_through_a_checkpoint():
    rng = np.random.default_rng(4)
    x = tg.tensor(rng.normal(size=(3, 2)), requires_grad=True)
    w = tg.tensor(rng.normal(size=(2, 2)), requires_grad=True)
    assert tg.gradcheck(lambda x, w: tg.checkpoint(lambda a: (a @ w).tanh() * a.sum(), x),
                        [x, w])


def test_the_benchmark_runs_agree_and_checkpointing_keeps_less_memory():
    from benchmarks import checkpoint as bench  # no timing: gradients and memory only
    assert bench.check(50) <= 1e-12
    peaks = {}
    for checkpointed in (False, True):
        model, xs, targets = bench.make(400)
        optimizer = tg.optim.SGD(model.parameters(), lr=1e-3)
        bench.train_step(model, optimizer, xs, targets, checkpointed)  # warm up
        peaks[checkpointed] = bench.peak_bytes(model, optimizer, xs, targets, checkpointed)
    assert peaks[True] < peaks[False] / 3  # 20 segments of 20 steps: one segment's graph
