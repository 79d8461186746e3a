"""The names of the per-step states, kept in one place: the layers give them, the
drawing (``rnn.viz``) reads them back.

The notes' a<t> is the hidden state after step t (a<0> the initial one), c<t> an
LSTM's cell state. A stacked layer l (1-based) adds [l], a bidirectional layer an
arrow for its direction: a→<t> runs forward in time, a←<t> backward, so that
"a←<3>[2]" is the reverse direction's state at t = 3 in the second layer. The
*series* of a state is its name with t left open: "a←<t>[2]".
"""
import re

_STATE = re.compile(r"(?P<part>[ac])(?P<arrow>[→←]?)<(?P<t>\d+)>(?P<depth>(\[\d+\])?)$")


def state_formats(parts=("a",), layer=None, bidirectional=False, reverse=False):
    """One format per part of the state, "{t}" standing for the step: ("a<{t}>",),
    ("a<{t}>", "c<{t}>") for an LSTM; with ``layer`` (0-based) the suffix [layer + 1],
    and with ``bidirectional`` the arrow of the direction."""
    arrow = ("←" if reverse else "→") if bidirectional else ""
    depth = "" if layer is None else f"[{layer + 1}]"
    return tuple(f"{part}{arrow}<{{t}}>{depth}" for part in parts)


def state_name(part, t):
    """The name of a state at step t: ``state_name("a", 0)`` is "a<0>"."""
    return state_formats((part,))[0].format(t=t)


def parse(name):
    """``(series, t)`` for a state's name ("a→<3>[2]" -> ("a→<t>[2]", 3)), or None for
    any other name."""
    match = _STATE.match(name or "")
    if match is None:
        return None
    series = f"{match['part']}{match['arrow']}<t>{match['depth']}"
    return series, int(match["t"])
