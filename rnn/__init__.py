"""rnn: recurrent networks built on tinygraph by unrolling a cell over time."""
