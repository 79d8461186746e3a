"""The core stays a teaching core: three files a reader finishes in one sitting, each op
written once, importing nothing but NumPy (and the standard library), with no cycle."""
import ast
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import tinygraph as tg
from tinygraph import ops
from tinygraph.engine import Op

CORE = pathlib.Path(tg.__file__).parent
FILES = {name: CORE / f"{name}.py" for name in ("tensor", "engine", "ops")}


def _source(name):
    return FILES[name].read_text()


def _non_blank(lines):
    return sum(1 for line in lines if line.strip())


def _definitions(name):
    """{name: non-blank lines} of the top-level classes and functions of a core file."""
    source = _source(name)
    lines = source.splitlines()
    return {node.name: _non_blank(lines[node.lineno - 1:node.end_lineno])
            for node in ast.parse(source).body
            if isinstance(node, (ast.ClassDef, ast.FunctionDef))}


def test_tensor_and_engine_together_stay_within_500_non_blank_lines():
    total = sum(_non_blank(_source(name).splitlines()) for name in ("tensor", "engine"))
    assert total <= 500, f"tensor.py + engine.py have {total} non-blank lines"


def test_no_op_class_is_longer_than_about_25_lines():
    op_classes = [name for name, cls in vars(ops).items()
                  if isinstance(cls, type) and issubclass(cls, Op) and cls is not Op]
    assert len(op_classes) >= 25
    sizes = _definitions("ops")
    too_long = {name: sizes[name] for name in op_classes if sizes[name] > 26}
    assert not too_long, too_long


def test_the_backward_walk_is_at_most_about_40_lines():
    sizes = _definitions("engine")
    assert sizes["backward"] <= 40 and sizes["backprop"] <= 42, sizes


def _imports(name):
    """(modules imported at any level of a core file, relative imports' names)."""
    absolute, relative = set(), set()
    for node in ast.walk(ast.parse(_source(name))):
        if isinstance(node, ast.Import):
            absolute |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                relative.add(node.module)
            else:
                absolute.add(node.module.split(".")[0])
    return absolute, relative


@pytest.mark.parametrize("name", sorted(FILES))
def test_the_core_imports_only_numpy_the_standard_library_and_itself(name):
    absolute, relative = _imports(name)
    outside = {m for m in absolute if m != "numpy" and m not in sys.stdlib_module_names}
    assert not outside, f"{name}.py imports {outside}"
    assert relative <= set(FILES), f"{name}.py imports {relative - set(FILES)} of tinygraph"


def test_the_core_files_import_each_other_without_a_cycle():
    graph = {name: _imports(name)[1] for name in FILES}
    assert graph["tensor"] == set()          # the tensor needs nothing of tinygraph
    assert graph["engine"] == {"tensor"}     # the node and walk need the tensor
    assert graph["ops"] <= {"engine", "tensor"}


def test_the_core_runs_alone_without_the_rest_of_tinygraph():
    """Importing the three files loads no other tinygraph module (accel, viz, nn...)."""
    code = ("import sys, importlib.util, types\n"
            f"package = types.ModuleType('tinygraph'); package.__path__ = [{str(CORE)!r}]\n"
            "sys.modules['tinygraph'] = package\n"
            "import tinygraph.ops as ops, numpy as np\n"
            "x = ops.Tensor(np.arange(3.0), requires_grad=True)\n"
            "ops.tanh(x * x).sum().backward()\n"
            "print(sorted(m for m in sys.modules if m.startswith('tinygraph')))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == ("['tinygraph', 'tinygraph.engine', 'tinygraph.ops', "
                                     "'tinygraph.tensor']")


@pytest.mark.parametrize("name", ["add", "mul", "sub", "div", "pow", "matmul", "exp", "log",
                                  "tanh", "sigmoid", "relu", "softplus", "sum", "mean",
                                  "max", "reshape", "transpose", "permute", "log_softmax",
                                  "broadcast_to"])
def test_each_op_is_registered_once_as_the_function_and_the_method(name):
    function = getattr(tg, name)
    assert getattr(tg.Tensor, name, None) is function or getattr(
        tg.Tensor, f"__{name.replace('div', 'truediv')}__", None) is function


def test_operators_come_from_the_same_registration():
    x, y = tg.tensor([1.0, 2.0], requires_grad=True), tg.tensor([3.0, 4.0])
    assert tg.Tensor.__add__ is tg.add and tg.Tensor.__matmul__ is tg.matmul
    assert tg.Tensor.__getitem__ is tg.getitem and tg.Tensor.__neg__ is tg.neg
    np.testing.assert_array_equal((2.0 - x).data, [1.0, 0.0])  # a reflected operator
    assert (y / x).op.name == "div" and (x ** 2).op.name == "pow"


def test_every_vjp_runs_on_arrays_in_a_first_order_backward():
    """backward() without create_graph records nothing: the VJPs saw arrays."""
    x = tg.tensor(np.linspace(-1, 1, 6).reshape(2, 3), requires_grad=True)
    loss = (x.log_softmax(1) * x.sigmoid() + (x ** 3).max(0).sum() + x.tanh().mean()).sum()
    loss.backward()
    assert type(x.grad) is np.ndarray
