"""rnn: recurrent networks built on tinygraph by unrolling a cell over time.

A cell computes one step, a<t> = g1(W_ax x<t> + W_aa a<t-1> + b_a); ``unroll`` applies
it once per time step, recording an ordinary graph, and backpropagation through time
is ``loss.backward()`` on that graph. Nothing in this package has a backward of its own.

    cell = rnn.RNNCell(input_size=10, hidden_size=20)     # W_ax (20,10), W_aa (20,20), b_a (20,)
    states = rnn.unroll(cell, xs)                          # [a<1>, ..., a<T>]
    model = rnn.ElmanRNN(10, 20, 5)                        # + W_ya (5,20), b_y (5,)
    logits, states = model(xs)                             # (T, B, 5), (T, B, 20)
    out, h_n = rnn.RNN(10, 20, num_layers=2, bidirectional=True)(xs)   # as torch.nn.RNN
"""
from .cells import Cell, GRUCell, LSTMCell, RNNCell
from .counting import ParameterCount, count_parameters
from .layers import GRU, LSTM, RNN, detach_state, unroll
from .models import ElmanRNN
from . import viz
from . import bptt, data
from .data import CharCorpus, load_corpus

__all__ = ["Cell", "RNNCell", "LSTMCell", "GRUCell", "unroll", "detach_state",
           "RNN", "LSTM", "GRU", "ElmanRNN", "count_parameters", "ParameterCount",
           "bptt", "data", "CharCorpus", "load_corpus"]
