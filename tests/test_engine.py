"""The backward pass: graph walking, fan-in, gradient state, no_grad, hooks, scopes."""
import gc
import weakref

import numpy as np
import pytest

import tinygraph as tg


def leaf(values):
    return tg.tensor(np.asarray(values, dtype=np.float64), requires_grad=True)


# ---- depth and fan-in -----------------------------------------------------------------
def test_backward_through_a_chain_of_100000_ops_needs_no_recursion():
    x = leaf(2.0)
    y = x
    for _ in range(100_001):
        y = -y  # an odd number of sign flips: a skipped or repeated step shows
    y.backward()
    assert y.item() == -2.0
    assert x.grad == -1.0


def test_a_freed_100000_op_chain_can_be_garbage_collected():
    x = leaf(2.0)
    y = x
    for _ in range(100_000):
        y = -y
    y.backward()
    root = weakref.ref(y.op)
    del y
    gc.collect()
    assert root() is None


def test_nodes_share_equal_shape_and_flag_tuples_and_the_shapes_kept_stay_bounded():
    x, w = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    a, b = x * w, x + w
    assert a.op.out_shape is b.op.out_shape and a.op.needs_grad is b.op.needs_grad
    assert a.op.out_shape == (2,) and a.op.needs_grad == (True, True)
    for n in range(1, 10_050):  # a program whose shapes keep changing
        z = leaf(np.zeros(n)).tanh()
        assert z.op.out_shape == (n,) and z.op.needs_grad == (True,)
    assert len(tg.engine._shapes) <= 10_001


def test_a_leaf_added_to_itself_gets_both_contributions():
    a = leaf(1.0)
    b = a + a
    c = b + b
    c.backward()
    assert a.grad == 4.0


def test_x_times_x_gets_the_product_rule_gradient():
    x = leaf(3.0)
    (x * x).backward()
    assert x.grad == 6.0


def test_a_tensor_used_k_times_gets_the_sum_of_k_contributions():
    x = leaf([1.0, 2.0])
    weights = [2.0, -3.0, 5.0, 7.0]
    h = x * 1.0  # a non-leaf, so fan-in is summed at a node as well as at the leaf
    total = sum((h * w for w in weights), start=x * 0.0)
    total.sum().backward()
    np.testing.assert_array_equal(x.grad, [sum(weights)] * 2)


def test_a_reused_intermediate_passes_its_summed_gradient_on_once():
    x = leaf(2.0)
    b = x * 3.0
    c = b * b + b  # dc/db = 2b + 1 = 13, dc/dx = 39
    c.backward()
    assert x.grad == 39.0


# ---- gradient state across backward calls ----------------------------------------------
def test_leaf_gradients_accumulate_across_backward_calls_until_set_to_none():
    x = leaf([1.0, 2.0])
    (x * 3.0).sum().backward()
    (x * 4.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [7.0, 7.0])
    x.grad = None
    (x * 5.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [5.0, 5.0])


def test_a_leaf_gradient_is_a_writable_array_of_its_own():
    x = leaf([[1.0, 2.0], [3.0, 4.0]])
    grad_out = np.array([1.0, 2.0, 3.0, 4.0])
    x.reshape(-1).backward(grad_out)  # reshape's VJP is a view of grad_out
    x.grad[0, 0] = 100.0  # in place, as an optimizer or clipping would
    np.testing.assert_array_equal(grad_out, [1.0, 2.0, 3.0, 4.0])
    w = leaf([1.0, 2.0])
    w.sum().backward()  # sum's VJP is a read-only broadcast view
    w.grad *= 0.5
    np.testing.assert_array_equal(w.grad, [0.5, 0.5])


def test_non_leaf_gradients_are_not_kept_by_default():
    x = leaf([1.0, 2.0])
    h = x * 2.0
    h.sum().backward()
    assert h.grad is None


def test_retain_grad_keeps_a_non_leaf_gradient():
    x = leaf([1.0, 2.0])
    h = x * 2.0
    h.retain_grad()
    (h * h).sum().backward()
    np.testing.assert_array_equal(h.grad, 2 * h.data)


def test_a_retained_non_leaf_gradient_accumulates_like_a_leaf_gradient():
    x = leaf(1.0)
    h = x * 2.0
    h.retain_grad()
    y = h * 3.0
    y.backward(retain_graph=True)
    y.backward()
    assert h.grad == 6.0


def test_retain_graph_allows_a_second_backward_through_the_same_graph():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_array_equal(x.grad, 2 * (2 * x.data))


def test_a_second_backward_through_a_freed_graph_raises_naming_retain_graph():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward()
    with pytest.raises(tg.GraphFreedError, match="retain_graph"):
        y.backward()


def test_a_failed_second_backward_leaves_the_gradients_as_they_were():
    x = leaf([1.0, 2.0])
    w = leaf([3.0, 4.0])
    y = (x * x).sum()
    y.backward()
    z = y + (w * 2.0).sum()  # w's part of the graph is fresh, x's is freed
    with pytest.raises(tg.GraphFreedError):
        z.backward()
    np.testing.assert_array_equal(x.grad, [2.0, 4.0])
    assert w.grad is None


def test_backward_frees_saved_arrays_but_keeps_the_graph_structure():
    x = leaf([1.0, 2.0])
    y = x.tanh()
    loss = y.sum()
    loss.backward()
    assert y.op.saved is None
    assert loss.op.parents == (y.op,)
    assert y.op.parents == (x,)


def test_backward_on_a_one_element_leaf_sets_its_gradient_to_one():
    x = leaf(5.0)
    x.backward()
    assert x.grad == 1.0


# ---- backward's bad input -------------------------------------------------------------
def test_backward_without_grad_on_a_non_scalar_raises_naming_the_shape():
    x = leaf([1.0, 2.0])
    y = x * 2.0
    with pytest.raises(RuntimeError, match=r"\(2,\)"):
        y.backward()
    assert x.grad is None


def test_backward_with_a_grad_of_the_wrong_shape_raises_shape_error_naming_both_shapes():
    x = leaf([1.0, 2.0])
    y = x * 2.0
    with pytest.raises(tg.ShapeError, match=r"\(3,\).*\(2,\)"):
        y.backward(np.ones(3))
    assert x.grad is None


def test_a_rejected_backward_leaves_the_graph_usable_and_the_gradients_unchanged():
    x = leaf([1.0, 2.0])
    x.grad = np.array([10.0, 10.0])
    y = x * 2.0
    with pytest.raises(tg.ShapeError):
        y.backward(np.ones((2, 1)))
    with pytest.raises(RuntimeError):
        y.backward()
    np.testing.assert_array_equal(x.grad, [10.0, 10.0])
    np.testing.assert_array_equal(x.data, [1.0, 2.0])
    y.backward(np.ones(2))
    np.testing.assert_array_equal(x.grad, [12.0, 12.0])


def test_backward_on_a_tensor_that_does_not_require_grad_raises():
    y = tg.tensor([1.0]) * 2.0
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()


# ---- no_grad ----------------------------------------------------------------------------
def test_no_grad_builds_no_graph():
    x = leaf([1.0, 2.0])
    with tg.no_grad():
        y = x * 2.0
    assert y.requires_grad is False
    assert y.op is None
    np.testing.assert_array_equal(y.data, [2.0, 4.0])


def test_is_grad_enabled_reflects_no_grad_and_is_restored_after_it():
    assert tg.is_grad_enabled()
    with tg.no_grad():
        assert not tg.is_grad_enabled()
    assert tg.is_grad_enabled()


def test_nested_no_grad_and_enable_grad_restore_the_enclosing_mode():
    x = leaf(1.0)
    with tg.no_grad():
        with tg.no_grad():
            assert not tg.is_grad_enabled()
        assert not tg.is_grad_enabled()
        with tg.enable_grad():
            assert tg.is_grad_enabled()
            y = x * 2.0
        assert not tg.is_grad_enabled()
    assert y.requires_grad and y.op is not None


def test_no_grad_is_restored_when_the_block_raises():
    with pytest.raises(KeyError):
        with tg.no_grad():
            raise KeyError("boom")
    assert tg.is_grad_enabled()


# ---- hooks ------------------------------------------------------------------------------
def test_a_leaf_hook_sees_the_total_gradient_from_all_consumers():
    x = leaf([1.0, 2.0])
    seen = []
    x.register_hook(lambda g: seen.append(g.copy()))
    (x * 2.0 + x * 3.0).sum().backward()
    assert len(seen) == 1
    np.testing.assert_array_equal(seen[0], [5.0, 5.0])


def test_a_non_leaf_hook_sees_the_total_gradient_arriving_at_it():
    x = leaf([1.0, 2.0])
    h = x * 1.0
    seen = []
    h.register_hook(lambda g: seen.append(g.copy()))
    (h * 2.0 + h * 3.0).sum().backward()
    assert len(seen) == 1
    np.testing.assert_array_equal(seen[0], [5.0, 5.0])


def test_a_leaf_hook_that_returns_an_array_replaces_the_gradient():
    x = leaf([1.0, 2.0])
    x.register_hook(lambda g: 10 * g)
    (x * 2.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [20.0, 20.0])


def test_a_non_leaf_hook_that_returns_an_array_replaces_the_gradient_passed_on():
    x = leaf([1.0, 2.0])
    h = x * 2.0
    h.register_hook(lambda g: np.zeros_like(g) + 1.0)
    (h * 7.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 2.0])


def test_a_removed_hook_is_no_longer_called():
    x = leaf([1.0, 2.0])
    seen = []
    handle = x.register_hook(lambda g: seen.append(g))
    (x * 2.0).sum().backward()
    handle.remove()
    (x * 2.0).sum().backward()
    assert len(seen) == 1
    np.testing.assert_array_equal(x.grad, [4.0, 4.0])


# ---- scopes and contributions -------------------------------------------------------------
def test_nodes_record_the_scope_labels_they_were_created_in():
    x = leaf([1.0, 2.0])
    outside = x * 1.0
    with tg.scope("layer=0"):
        first = x * 2.0
        with tg.scope("t=1"):
            nested = first * 3.0
    assert outside.op.scope == ()
    assert first.op.scope == ("layer=0",)
    assert nested.op.scope == ("layer=0", "t=1")


def test_record_contributions_lists_one_gradient_per_use_that_sum_to_the_leaf_grad():
    W = leaf([[0.5, -1.0], [2.0, 0.25]])
    a = tg.tensor([1.0, -1.0])
    for t in (1, 2, 3):
        with tg.scope(f"t={t}"):
            a = (W @ a).tanh()
    with tg.record_contributions() as contributions:
        a.sum().backward()
    uses = contributions[W]
    assert [node.scope for node, _ in uses] == [("t=3",), ("t=2",), ("t=1",)]
    np.testing.assert_allclose(sum(grad for _, grad in uses), W.grad, rtol=1e-15)


def test_record_contributions_lists_only_leaves_that_require_grad():
    x = leaf([1.0, 2.0])
    joined = tg.concat([x, tg.tensor([3.0])])
    stacked = tg.stack([x, tg.tensor([4.0, 5.0])])
    with tg.record_contributions() as contributions:
        (joined.sum() + stacked.sum()).backward()
    assert [t is x for t in contributions] == [True]


def test_backward_order_is_depth_first_so_each_output_is_followed_by_its_own_step():
    # Built as ElmanRNN builds it: all states first, then one output per state. Depth
    # first, backward takes output t and then state t, so the gradient of a<t> does
    # not wait for all T outputs (reverse creation order would hold T of them at once).
    a, states = tg.tensor(np.ones(3), requires_grad=True), []
    for _ in range(5):
        a = tg.tanh(a)
        states.append(a)
    outputs = [state * 2.0 for state in states]
    order = tg.engine.toposort(tg.stack(outputs).sum().op)
    position = {vertex: i for i, vertex in enumerate(order)}
    for t in range(4):
        assert (position[outputs[t + 1].op] < position[states[t + 1].op]
                < position[outputs[t].op])


def test_a_shape_of_ones_is_not_confused_with_needs_grad_flags():
    x, y = tg.tensor(np.ones((1, 1)), requires_grad=True), tg.tensor(np.ones((1, 1)))
    (x * y).sum()  # records needs_grad (True, False)
    z = x * x      # needs_grad (True, True), output shape (1, 1)
    assert z.op.out_shape == (1, 1) and type(z.op.out_shape[0]) is int


def test_scope_works_as_a_decorator_and_when_one_instance_nests_in_itself():
    x = tg.tensor(np.ones(2), requires_grad=True)

    @tg.scope("layer")
    def double(v):
        return v * 2.0

    assert double(x).op.scope == ("layer",)
    step = tg.scope("t")
    with step:
        with step:
            assert (x * 1.0).op.scope == ("t", "t")
        assert (x * 1.0).op.scope == ("t",)
    assert (x * 1.0).op.scope == ()


def test_a_leaf_hook_that_raises_leaves_every_grad_as_it_was():
    x, y = tg.tensor(np.ones(2), requires_grad=True), tg.tensor(np.ones(2), requires_grad=True)

    def boom(grad):
        raise RuntimeError("boom")

    y.register_hook(boom)
    with pytest.raises(RuntimeError, match="boom"):
        (x * y).sum().backward()
    assert x.grad is None and y.grad is None


def test_a_root_that_another_root_depends_on_gets_both_gradients():
    # b = a^2 and c = 3b: d(2b + c)/da with b and c both roots, b visited last
    a = tg.tensor(np.array([1.0, 2.0]), requires_grad=True)
    b = a * a
    c = b * 3.0
    (ga,) = tg.grad([c, b], [a], grad_outputs=[np.ones(2), 2 * np.ones(2)])
    np.testing.assert_array_equal(ga.data, (3 + 2) * 2 * a.data)
