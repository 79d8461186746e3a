"""nn: Parameter, Module registration and state, containers, layers, init, seeding."""
import math

import numpy as np
import pytest

import tinygraph as tg
from tinygraph import nn
from tinygraph.engine import Op


class TwoLayer(nn.Module):
    """A module mixing a sub-module, a container and own parameters."""

    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(3, 4)
        self.W_ya = nn.Parameter(np.ones((2, 4)))
        self.blocks = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2, bias=False)])
        self.b_y = nn.Parameter(np.zeros(2))

    def forward(self, x):
        a = self.hidden(x).tanh()
        y = a @ self.W_ya.T + self.b_y
        for block in self.blocks:
            y = block(y)
        return y


# ---- Parameter ------------------------------------------------------------------------
def test_parameter_requires_grad_and_is_a_leaf():
    p = nn.Parameter(np.zeros((2, 3)), name="W")
    assert p.requires_grad and p.is_leaf and p.name == "W"


def test_parameter_converts_integer_data_to_float64():
    assert nn.Parameter([1, 2, 3]).dtype == np.float64


def test_parameter_keeps_float32():
    assert nn.Parameter(np.zeros(2, dtype=np.float32)).dtype == np.float32


def test_parameter_repr_says_parameter():
    assert repr(nn.Parameter(np.zeros(2), name="b_a")).startswith("Parameter(")


# ---- registration --------------------------------------------------------------------------
def test_named_parameters_are_dotted_and_in_assignment_order():
    names = [name for name, _ in TwoLayer().named_parameters()]
    assert names == ["hidden.weight", "hidden.bias", "W_ya", "blocks.0.weight",
                     "blocks.0.bias", "blocks.1.weight", "b_y"]


def test_parameters_follow_named_parameters():
    model = TwoLayer()
    assert [id(p) for p in model.parameters()] == [
        id(p) for _, p in model.named_parameters()]


def test_unnamed_parameter_takes_the_attribute_name():
    assert TwoLayer().W_ya.name == "W_ya"


def test_shared_parameter_is_listed_once():
    model = nn.Module()
    model.first = nn.Linear(2, 2)
    model.second = nn.Linear(2, 2)
    model.second.weight = model.first.weight
    assert [n for n, _ in model.named_parameters()] == [
        "first.weight", "first.bias", "second.bias"]


def test_state_dict_of_tied_weights_holds_every_name_as_torch():
    model = nn.Module()
    model.first = nn.Linear(2, 2)
    model.second = nn.Linear(2, 2)
    model.second.weight = model.first.weight
    state = model.state_dict()
    assert list(state) == ["first.weight", "first.bias", "second.weight", "second.bias"]
    model.load_state_dict(state)  # strict: each name is a key
    torch = pytest.importorskip("torch")
    theirs = torch.nn.Module()
    theirs.first, theirs.second = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    theirs.second.weight = theirs.first.weight
    assert list(theirs.state_dict()) == list(state)
    model.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    np.testing.assert_array_equal(model.second.weight.data, theirs.first.weight.detach().numpy())


def test_reassigning_none_unregisters_the_parameter():
    model = TwoLayer()
    model.b_y = None
    assert "b_y" not in dict(model.named_parameters())


@pytest.mark.parametrize("value", [np.zeros((2, 3)), tg.tensor(np.zeros((2, 3))), 3.0])
def test_assigning_a_non_parameter_over_a_parameter_raises_and_keeps_it(value):
    """As PyTorch: silently unregistering the weight would drop it from training."""
    layer = nn.Linear(3, 2)
    weight = layer.weight
    with pytest.raises(TypeError, match="cannot assign .* as parameter 'weight' of Linear"):
        layer.weight = value
    assert layer.weight is weight and "weight" in dict(layer.named_parameters())


def test_assigning_a_non_module_over_a_module_raises():
    model = nn.Sequential(nn.ReLU())
    with pytest.raises(TypeError, match="as child module '0' of Sequential"):
        setattr(model, "0", 3)


def test_load_state_dict_of_a_non_dict_says_so():
    with pytest.raises(TypeError, match="takes a dict of arrays.*not list"):
        nn.Linear(2, 2).load_state_dict([1, 2])


def test_deleting_an_attribute_unregisters_it():
    model = TwoLayer()
    del model.hidden
    assert not any(n.startswith("hidden.") for n, _ in model.named_parameters())


def test_assigning_before_super_init_names_the_fix():
    class Forgetful(nn.Module):
        def __init__(self):
            self.W = nn.Parameter(np.zeros(2))

    with pytest.raises(AttributeError, match="super\\(\\).__init__"):
        Forgetful()


def test_num_parameters_counts_every_entry():
    # hidden 4*3 + 4, W_ya 2*4, blocks 2*2 + 2 and 2*2, b_y 2
    assert TwoLayer().num_parameters() == 16 + 8 + 6 + 4 + 2


def test_forward_without_definition_says_so():
    with pytest.raises(NotImplementedError, match="Module does not define forward"):
        nn.Module()(1)


# ---- training state ------------------------------------------------------------------------
def test_zero_grad_sets_every_grad_to_none():
    model = TwoLayer()
    model(np.ones((5, 3))).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_eval_and_train_set_the_flag_recursively():
    model = TwoLayer().eval()
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())


# ---- state_dict ------------------------------------------------------------------------------
def test_state_dict_holds_copies():
    model = TwoLayer()
    sd = model.state_dict()
    sd["W_ya"][:] = 7.0
    assert np.all(model.W_ya.data == 1.0)


def test_load_state_dict_round_trips_between_models():
    tg.manual_seed(1)
    source, target = TwoLayer(), TwoLayer()
    target.load_state_dict(source.state_dict())
    x = np.random.default_rng(0).normal(size=(4, 3))
    np.testing.assert_array_equal(target(x).data, source(x).data)


def test_load_state_dict_keeps_the_parameter_objects():
    model = TwoLayer()
    before = [id(p) for p in model.parameters()]
    model.load_state_dict({k: v + 1 for k, v in model.state_dict().items()})
    assert [id(p) for p in model.parameters()] == before


def test_load_state_dict_bumps_the_version_through_the_data_setter():
    model = TwoLayer()
    version = model.W_ya._version
    model.load_state_dict(model.state_dict())
    assert model.W_ya._version == version + 1


def test_load_state_dict_casts_to_the_parameter_dtype():
    layer = nn.Linear(2, 2, dtype=np.float32)
    layer.load_state_dict({"weight": np.ones((2, 2)), "bias": np.array([1, 2])})
    assert layer.weight.dtype == np.float32 and layer.bias.dtype == np.float32


def test_load_state_dict_accepts_tensors():
    layer = nn.Linear(2, 2)
    layer.load_state_dict({"weight": tg.tensor(np.eye(2)), "bias": tg.tensor(np.zeros(2))})
    np.testing.assert_array_equal(layer.weight.data, np.eye(2))


def _unchanged(model, before):
    return all(np.array_equal(before[k], v) for k, v in model.state_dict().items())


def test_wrong_shape_names_the_key_and_both_shapes_and_changes_nothing():
    model = TwoLayer()
    before = model.state_dict()
    bad = {k: v + 1 for k, v in before.items()}
    bad["blocks.0.weight"] = np.zeros((3, 2))
    with pytest.raises(RuntimeError, match=r"'blocks.0.weight'.*\(3, 2\).*\(2, 2\)"):
        model.load_state_dict(bad)
    assert _unchanged(model, before)


def test_missing_key_is_named_and_changes_nothing():
    model = TwoLayer()
    before = model.state_dict()
    bad = {k: v + 1 for k, v in before.items() if k != "b_y"}
    with pytest.raises(RuntimeError, match="missing key 'b_y'"):
        model.load_state_dict(bad)
    assert _unchanged(model, before)


def test_unexpected_key_is_named_and_changes_nothing():
    model = TwoLayer()
    before = model.state_dict()
    bad = {k: v + 1 for k, v in before.items()}
    bad["W_aa"] = np.zeros((2, 2))
    with pytest.raises(RuntimeError, match="unexpected key 'W_aa'"):
        model.load_state_dict(bad)
    assert _unchanged(model, before)


def test_non_numeric_value_is_named_and_changes_nothing():
    model = TwoLayer()
    before = model.state_dict()
    bad = {k: v + 1 for k, v in before.items()}
    bad["b_y"] = np.array(["a", "b"])
    with pytest.raises(RuntimeError, match="'b_y' holds <U1 data"):
        model.load_state_dict(bad)
    assert _unchanged(model, before)


def test_non_strict_load_reports_missing_and_unexpected_keys():
    model = TwoLayer()
    sd = model.state_dict()
    sd.pop("b_y")
    sd["extra"] = np.zeros(1)
    result = model.load_state_dict(sd, strict=False)
    assert result.missing_keys == ["b_y"] and result.unexpected_keys == ["extra"]


# ---- summary and repr ------------------------------------------------------------------------
def test_summary_lists_name_shape_count_and_total():
    lines = nn.Linear(10, 20).summary().splitlines()
    assert lines[0] == "Linear"
    assert lines[3].split() == ["weight", "(20,", "10)", "200"]
    assert lines[4].split() == ["bias", "(20,)", "20"]
    assert lines[-1].split() == ["total", "220"]


def test_summary_appends_footnotes_of_every_module():
    class Noted(nn.Linear):
        def summary_notes(self):
            return ["PyTorch counts two biases"]

    model = nn.Sequential(Noted(2, 2), Noted(2, 2))
    assert model.summary().splitlines()[-1] == "* PyTorch counts two biases"
    assert model.summary().count("two biases") == 1


def test_repr_shows_the_module_tree():
    text = repr(nn.Sequential(nn.Linear(2, 3), nn.Tanh()))
    assert text.splitlines() == [
        "Sequential(", "  (0): Linear(in_features=2, out_features=3, bias=True)",
        "  (1): Tanh()", ")"]


# ---- containers ------------------------------------------------------------------------------
def test_sequential_applies_modules_in_order():
    tg.manual_seed(0)
    first, second = nn.Linear(3, 4), nn.Linear(4, 2)
    x = np.random.default_rng(0).normal(size=(5, 3))
    expected = second(first(x).relu()).data
    np.testing.assert_array_equal(nn.Sequential(first, nn.ReLU(), second)(x).data, expected)


def test_module_list_indexes_and_iterates():
    layers = [nn.Linear(2, 2) for _ in range(3)]
    container = nn.ModuleList(layers)
    assert len(container) == 3 and container[-1] is layers[2]
    assert list(container) == layers and list(container[1:]) == layers[1:]


def test_a_slice_of_a_sequential_is_a_sequential():
    tg.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    head = model[:2]
    assert type(head) is nn.Sequential and len(head) == 2 and head[0] is model[0]
    x = np.ones((1, 3))
    np.testing.assert_array_equal(head(x).data, model[1](model[0](x)).data)
    assert type(nn.ModuleList([nn.ReLU(), nn.Tanh()])[1:]) is nn.ModuleList


def test_module_list_refuses_non_modules():
    with pytest.raises(TypeError, match="holds Modules, not int"):
        nn.ModuleList([1])


# ---- layers ------------------------------------------------------------------------------------
def test_linear_computes_x_times_w_transposed_plus_b():
    layer = nn.Linear(3, 2)
    x = np.random.default_rng(0).normal(size=(4, 3))
    np.testing.assert_allclose(layer(x).data, x @ layer.weight.data.T + layer.bias.data)


def test_linear_weight_is_out_by_in():
    layer = nn.Linear(10, 20)
    assert layer.weight.shape == (20, 10) and layer.bias.shape == (20,)


def test_linear_init_is_bounded_by_one_over_sqrt_fan_in():
    tg.manual_seed(0)
    layer = nn.Linear(16, 400)
    bound = 1 / math.sqrt(16)
    for p in (layer.weight, layer.bias):
        assert np.abs(p.data).max() <= bound
        assert np.abs(p.data).max() > 0.95 * bound  # spread over the whole interval


def test_linear_without_bias_has_only_a_weight():
    assert [n for n, _ in nn.Linear(2, 3, bias=False).named_parameters()] == ["weight"]


def test_linear_names_itself_on_a_wrong_input_width():
    with pytest.raises(tg.ShapeError, match=r"Linear\(in_features=3.*\(4, 5\)"):
        nn.Linear(3, 2)(np.zeros((4, 5)))


def test_linear_gradients_pass_gradcheck():
    layer = nn.Linear(3, 2)
    x = tg.tensor(np.random.default_rng(0).normal(size=(4, 3)), requires_grad=True)
    tg.gradcheck(lambda x, W, b: (x @ W.T + b).tanh().sum(), [x, layer.weight, layer.bias])
    layer(x).tanh().sum().backward()
    expected = layer.weight.grad.copy()
    layer.zero_grad()
    (x @ layer.weight.T + layer.bias).tanh().sum().backward()
    np.testing.assert_array_equal(layer.weight.grad, expected)


def test_linear_accepts_nested_lists():
    layer = nn.Linear(2, 1)
    np.testing.assert_allclose(layer([[1.0, 2.0]]).data,
                               layer(np.array([[1.0, 2.0]])).data)


def test_linear_accepts_batched_time_major_input():
    assert nn.Linear(3, 5)(np.zeros((7, 2, 3))).shape == (7, 2, 5)


def test_embedding_looks_up_rows_and_sums_repeated_gradients():
    table = nn.Embedding(5, 3)
    indices = np.array([[1, 4], [1, 0]])
    out = table(indices)
    np.testing.assert_array_equal(out.data, table.weight.data[indices])
    out.sum().backward()
    np.testing.assert_array_equal(table.weight.grad[:, 0], [1, 2, 0, 0, 1])


def test_embedding_accepts_integer_tensors():
    table = nn.Embedding(5, 3)
    assert table(tg.tensor(np.array([0, 2]))).shape == (2, 3)


def test_embedding_refuses_float_indices():
    with pytest.raises(TypeError, match="integer indices, not float64"):
        nn.Embedding(5, 3)(np.array([0.0]))


def test_embedding_refuses_out_of_range_indices():
    with pytest.raises(IndexError, match=r"\[0, 5\).*from 0 to 5"):
        nn.Embedding(5, 3)(np.array([0, 5]))


def test_embedding_init_is_standard_normal():
    tg.manual_seed(0)
    weight = nn.Embedding(200, 50).weight.data
    assert abs(weight.mean()) < 0.02 and abs(weight.std() - 1) < 0.02


@pytest.mark.parametrize("module, function", [(nn.Tanh, np.tanh),
                                              (nn.ReLU, lambda x: np.maximum(x, 0)),
                                              (nn.Sigmoid, lambda x: 1 / (1 + np.exp(-x)))])
def test_activation_modules_apply_their_function(module, function):
    x = np.linspace(-3, 3, 7)
    np.testing.assert_allclose(module()(x).data, function(x))


def test_dropout_module_is_identity_in_eval_mode():
    x = np.ones((4, 4))
    np.testing.assert_array_equal(nn.Dropout(0.5).eval()(x).data, x)


def test_dropout_module_drops_in_training_mode():
    tg.manual_seed(0)
    out = nn.Dropout(0.5)(np.ones((20, 20))).data
    assert set(np.unique(out)) == {0.0, 2.0}


# ---- init and seeding ---------------------------------------------------------------------
def test_manual_seed_makes_initialisation_reproducible():
    tg.manual_seed(42)
    first = TwoLayer().state_dict()
    tg.manual_seed(42)
    second = TwoLayer().state_dict()
    assert all(np.array_equal(first[k], second[k]) for k in first)


def test_different_seeds_give_different_weights():
    tg.manual_seed(1)
    first = nn.Linear(3, 3).weight.data
    tg.manual_seed(2)
    assert not np.array_equal(first, nn.Linear(3, 3).weight.data)


def test_xavier_uniform_respects_its_bound():
    p = nn.Parameter(np.empty((30, 50)))
    nn.init.xavier_uniform_(p, gain=2.0)
    bound = 2.0 * math.sqrt(6 / 80)
    assert np.abs(p.data).max() <= bound and np.abs(p.data).max() > 0.95 * bound


@pytest.mark.parametrize("shape", [(4, 4), (3, 6), (6, 3)])
def test_orthogonal_gives_orthonormal_rows_or_columns(shape):
    p = nn.init.orthogonal_(nn.Parameter(np.empty(shape)), gain=1.5)
    q = p.data / 1.5
    gram = q @ q.T if shape[0] <= shape[1] else q.T @ q
    np.testing.assert_allclose(gram, np.eye(min(shape)), atol=1e-12)


def test_zeros_and_uniform_fill_in_place_and_keep_dtype():
    p = nn.Parameter(np.ones(100, dtype=np.float32))
    assert nn.init.zeros_(p) is p and not p.data.any()
    nn.init.uniform_(p, -0.1, 0.1)
    assert p.dtype == np.float32 and np.abs(p.data).max() <= 0.1


def test_init_refuses_vectors_for_fan_based_schemes():
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        nn.init.xavier_uniform_(nn.Parameter(np.zeros(3)))


# ---- a weight used many times (tinygraph.accel.rowsum) ---------------------------------
class _UsesItsWeightThrice(nn.Module):
    def __init__(self, linear=tg.linear, matmul=tg.matmul):
        super().__init__()
        self.W = nn.Parameter(np.arange(16.0).reshape(4, 4) / 20)
        self.linear, self.matmul = linear, matmul

    def forward(self, x):
        for _ in range(3):
            x = self.linear(x, self.W).tanh()
        return self.matmul(x, self.W)


def test_the_accelerators_linear_and_matmul_give_the_cores_values_and_gradients():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 4))
    fast = _UsesItsWeightThrice()
    core = _UsesItsWeightThrice(tg.ops.Linear.apply, tg.ops.MatMul.apply)
    results = []
    for model in (fast, core):
        out = model(tg.tensor(x))
        out.sum().backward()
        results.append((out, model.W.grad))
        kinds = {type(v).__module__ for v in tg.engine.toposort(out.op)
                 if isinstance(v, Op) and v.name in ("linear", "matmul")}
        assert kinds == {"tinygraph.accel.rowsum" if model is fast else "tinygraph.ops"}
    (fast_out, fast_grad), (core_out, core_grad) = results
    np.testing.assert_allclose(fast_out.data, core_out.data, rtol=0, atol=1e-14)
    np.testing.assert_allclose(fast_grad, core_grad, rtol=0, atol=1e-14)


def test_a_weight_written_in_place_between_module_calls_is_seen_by_the_next_call():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.W = nn.Parameter(np.eye(3))

        def forward(self, x):
            return tg.linear(tg.linear(tg.linear(x, self.W), self.W), self.W)

    model, x = Twice(), np.ones((2, 3))
    assert np.array_equal(model(x).data, x)
    model.W.data[...] = 2 * np.eye(3)  # in place: no version bump, same array object
    assert np.array_equal(model(x).data, 8 * x)


def test_only_weights_are_shared_so_a_reused_buffer_is_read_afresh_at_every_use():
    class Mixer(nn.Module):
        def __init__(self):
            super().__init__()
            self.buffer = np.empty((2, 2))

        def forward(self, x):
            outputs = []
            for k in (1, 2, 3):
                self.buffer[...] = k * np.eye(2)  # the same writable array every time
                outputs.append(tg.linear(x, tg.tensor(self.buffer)).data.copy())
            return outputs

    assert [o[0, 0] for o in Mixer()(np.ones((1, 2)))] == [1.0, 2.0, 3.0]


def test_assigning_a_weights_data_inside_a_module_call_is_seen_at_once():
    class Reassigns(nn.Module):
        def __init__(self):
            super().__init__()
            self.W = nn.Parameter(np.eye(2))

        def forward(self, x):
            outputs = []
            for k in (1, 2, 3):
                self.W.data = k * np.eye(2)
                outputs.append(tg.linear(x, self.W).data[0, 0])
                outputs.append(tg.linear(x, self.W).data[0, 0])  # the shared copy
            return outputs

    assert Reassigns()(np.ones((1, 2))) == [1.0, 1.0, 2.0, 2.0, 3.0, 3.0]


def test_a_module_call_in_another_thread_changes_no_value_here():
    import threading
    inside, results = threading.Event(), []
    W = tg.tensor(np.eye(2), requires_grad=True)

    class Waits(nn.Module):
        def forward(self, x):
            inside.set()
            done.wait(5)
            return x

    done = threading.Event()
    worker = threading.Thread(target=lambda: Waits()(np.ones(1)))
    worker.start()
    inside.wait(5)  # the worker is inside a Module call now
    for k in (1, 2, 3):  # plain calls in this thread, outside any Module call
        W.data[...] = k * np.eye(2)
        results.append(tg.linear(np.ones((1, 2)), W).data[0, 0])
    done.set()
    worker.join()
    assert results == [1.0, 2.0, 3.0]
