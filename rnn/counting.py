"""Parameter counts, as the notes work them out by hand.

For m inputs, n hidden units and p outputs the notes' Elman model has
W_ax (n, m), W_aa (n, n), W_ya (p, n): n·m + n·n + p·n weights, plus b_a (n) and
b_y (p). For m = 10, n = 20, p = 5 that is 700 weights and 725 parameters.

PyTorch's ``nn.RNN`` keeps two bias vectors (bias_ih, bias_hh) where the notes have
one b_a, so ``nn.RNN(10, 20)`` + ``nn.Linear(20, 5)`` has 745. An LSTM stacks 4 gate
blocks in each weight (4n rows), a GRU 3; a layer l > 0 reads the D·n outputs of the
layer below (D = 2 when bidirectional), and each direction has its own weights.
``count_parameters`` lists every shape under the names our modules use, so each row
can be checked against ``model.named_parameters()`` and the total against PyTorch.
"""
import math

GATES = {"elman": 1, "rnn": 1, "lstm": 4, "gru": 3}


class ParameterCount:
    """Shapes of a model's parameters by name, with their counts and total.

    ``shapes``: {name: shape}; ``counts``: {name: entries}; ``total``; ``weights`` and
    ``biases``: the totals of the matrices and of the vectors. ``str()`` is the table.
    """

    def __init__(self, title, shapes, notes=()):
        self.title, self.shapes, self.notes = title, dict(shapes), list(notes)

    @property
    def counts(self):
        return {name: math.prod(shape) for name, shape in self.shapes.items()}

    @property
    def total(self):
        return sum(self.counts.values())

    @property
    def weights(self):
        return sum(math.prod(s) for s in self.shapes.values() if len(s) == 2)

    @property
    def biases(self):
        return sum(math.prod(s) for s in self.shapes.values() if len(s) == 1)

    def __str__(self):
        rows = [(name, str(shape), f"{math.prod(shape):,}")
                for name, shape in self.shapes.items()]
        header, total = ("name", "shape", "count"), ("total", "", f"{self.total:,}")
        widths = [max(len(row[i]) for row in [header, total, *rows]) for i in range(3)]

        def line(row):
            return f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:>{widths[2]}}"

        rule = "-" * len(line(header))
        lines = [self.title, line(header), rule, *map(line, rows), rule, line(total)]
        return "\n".join(lines + [f"* {note}" for note in self.notes])

    def __repr__(self):
        return f"ParameterCount({self.title!r}, total={self.total})"


def count_parameters(kind, input_size, hidden_size, output_size=None, num_layers=1,
                     bidirectional=False, bias=True):
    """The parameter shapes and counts of a recurrent model, by name.

    kind "elman": the notes' model (``rnn.ElmanRNN``): W_ax, W_aa, b_a, then the
    output layer W_ya, b_y (output_size is required). kind "rnn", "lstm", "gru": the
    layers ``rnn.RNN/LSTM/GRU`` (PyTorch's layout, two biases per cell) for every
    layer and direction, then, if output_size is given, an output layer W_ya, b_y on
    their D·n outputs (``nn.Linear(D*n, p)`` in PyTorch).

    >>> count_parameters("elman", 10, 20, 5).total
    725
    >>> count_parameters("rnn", 10, 20, 5).total     # torch.nn.RNN + nn.Linear
    745
    """
    if kind not in GATES:
        raise ValueError(f"count_parameters: kind must be one of {tuple(GATES)}, "
                         f"not {kind!r}")
    m, n, p = input_size, hidden_size, output_size
    if kind == "elman":
        if p is None or num_layers != 1 or bidirectional:
            raise ValueError("count_parameters: the notes' Elman model has one layer, "
                             "one direction and an output layer (give output_size)")
        shapes = {"W_ax": (n, m), "W_aa": (n, n), "b_a": (n,), "W_ya": (p, n), "b_y": (p,)}
        if not bias:
            shapes = {k: s for k, s in shapes.items() if len(s) == 2}
        notes = [f"n·m + n·n + p·n = {n * m} + {n * n} + {p * n} = {n * m + n * n + p * n} "
                 f"weights" + (f", + n + p = {n + p} biases" if bias else "")]
        if bias:
            notes.append(f"torch.nn.RNN({m}, {n}) + nn.Linear({n}, {p}) counts n = {n} more: "
                         f"PyTorch keeps two bias vectors (bias_ih, bias_hh) where the "
                         f"notes have one b_a")
        return ParameterCount(f"ElmanRNN(m={m}, n={n}, p={p})", shapes, notes)

    rows = GATES[kind] * n
    directions = ("", "_reverse") if bidirectional else ("",)
    shapes = {}
    for layer in range(num_layers):
        layer_input = m if layer == 0 else len(directions) * n
        for suffix in directions:
            cell = f"l{layer}{suffix}"
            shapes[f"{cell}.W_ax"] = (rows, layer_input)
            shapes[f"{cell}.W_aa"] = (rows, n)
            if bias:
                shapes[f"{cell}.b_ax"] = (rows,)
                shapes[f"{cell}.b_aa"] = (rows,)
    if p is not None:
        shapes["W_ya"] = (p, len(directions) * n)
        if bias:
            shapes["b_y"] = (p,)
    notes = []
    if GATES[kind] > 1:
        notes.append(f"{kind.upper()}: {GATES[kind]} gate blocks of n rows in every "
                     f"weight and bias ({'i, f, g, o' if kind == 'lstm' else 'r, z, n'})")
    if bias:
        notes.append(f"PyTorch's two biases per cell (b_ax = bias_ih, b_aa = bias_hh): "
                     f"{rows} more per layer and direction than one bias would give")
    title = (f"{kind.upper()}(m={m}, n={n}, num_layers={num_layers}, "
             f"bidirectional={bidirectional})" + (f" + output layer (p={p})" if p else ""))
    return ParameterCount(title, shapes, notes)


def conventions(kind, input_size, hidden_size, output_size=None, num_layers=1,
                bidirectional=False):
    """The same model counted three ways: rows of (convention, weights, with biases).

    The notes (and Keras's SimpleRNN and LSTM) keep one bias vector per cell where
    PyTorch keeps two; Keras's GRU (reset_after=True) keeps two as well. ``kind``
    "elman" is counted as the one-layer "rnn" it is.

    >>> [total for _, _, total in conventions("rnn", 10, 20, 5)]     # notes, PyTorch, Keras
    [725, 745, 725]
    """
    kind = "rnn" if kind == "elman" else kind
    m, n, p = input_size, hidden_size, output_size
    torch_count = count_parameters(kind, m, n, p, num_layers, bidirectional)
    cells = num_layers * (2 if bidirectional else 1)
    one_bias = torch_count.total - cells * GATES[kind] * n
    keras = torch_count.total if kind == "gru" else one_bias
    torch_name = {"rnn": "nn.RNN", "lstm": "nn.LSTM", "gru": "nn.GRU"}[kind]
    keras_name = {"rnn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}[kind]
    head = f" + nn.Linear({(2 if bidirectional else 1) * n}, {p})" if p else ""
    weights = torch_count.weights
    return [("the notes (one bias per cell)", weights, one_bias),
            (f"PyTorch: {torch_name}({m}, {n}){head}", weights, torch_count.total),
            (f"Keras: {keras_name}({n})" + (f" + Dense({p})" if p else ""), weights, keras)]
