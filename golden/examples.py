"""Example models that are not plain Linear/ReLU stacks, trained on the digits, for :mod:`.graph`.

``ResidualGeluMLP``
    64 -> 128 with GELU -> 64, a residual add of the input, LayerNorm, then a
    ReLU layer and the 10-class head: the shape of a transformer feed-forward
    block with a classifier on top.
``DigitsLSTM`` (``cell="lstm"`` or ``"gru"``)
    the 8x8 digit read row by row: 8 time steps of 8 pixels into a
    ``hidden``-unit LSTM (or GRU), the last step's hidden state into a
    10-class Linear head: the NeuralTalk-style recurrent workload in small.

``python -m eie.golden.examples OUT`` trains both (and the GRU) and writes,
per model, ``OUT/NAME.pt`` (``torch.save`` of the module) and
``OUT/NAME.npz`` (``X_train, y_train, X_test, y_test`` in the shape the
model takes), so that one ``eie compress --model OUT/NAME.pt --data
OUT/NAME.npz --pes 4`` compresses it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

__all__ = ["ResidualGeluMLP", "DigitsLSTM", "EXAMPLES", "example_data", "train_example", "main"]

ROWS = 8            # an 8x8 digit as 8 steps of 8 pixels


def _torch():
    import torch
    import torch.nn as nn
    return torch, nn


torch, nn = _torch()


class ResidualGeluMLP(nn.Module):
    """``head(relu(fc3(LayerNorm(x + fc2(gelu(fc1(x)))))))``."""

    def __init__(self, width: int = 64, hidden: int = 128, classes: int = 10):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, width)
        self.norm = nn.LayerNorm(width)
        self.fc3 = nn.Linear(width, width)
        self.head = nn.Linear(width, classes)

    def forward(self, x):
        h = self.norm(x + self.fc2(self.act(self.fc1(x))))
        return self.head(torch.relu(self.fc3(h)))


class DigitsLSTM(nn.Module):
    """A recurrent layer over the rows of the image; the last step's state to the class scores."""

    def __init__(self, features: int = ROWS, hidden: int = 32, classes: int = 10, cell: str = "lstm"):
        super().__init__()
        rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.rnn = rnn(features, hidden, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


# name -> (constructor, sequence input?, training epochs)
EXAMPLES = {
    "digits-resmlp": (lambda: ResidualGeluMLP(), False, 30),
    "digits-lstm": (lambda: DigitsLSTM(cell="lstm"), True, 40),
    "digits-gru": (lambda: DigitsLSTM(cell="gru"), True, 40),
}


def example_data(name: str):
    """The digits split in the shape example ``name`` takes: ``(n, 64)`` or ``(n, 8, 8)`` (rows as steps)."""
    from .models import digits_split
    X_train, y_train, X_test, y_test = digits_split()
    if EXAMPLES[name][1]:
        X_train, X_test = X_train.reshape(-1, ROWS, ROWS), X_test.reshape(-1, ROWS, ROWS)
    return X_train, y_train, X_test, y_test


def train_example(name: str, *, seed: int = 0, epochs: int | None = None, progress=None):
    """The trained float example ``name`` (see :data:`EXAMPLES`)."""
    from .models import set_threads, train_classifier
    if name not in EXAMPLES:
        raise ValueError(f"unknown example {name!r}; known: {', '.join(EXAMPLES)}")
    set_threads()
    build, _, default_epochs = EXAMPLES[name]
    torch.manual_seed(seed)
    model = build()
    X_train, y_train, _, _ = example_data(name)
    train_classifier(model, X_train, y_train, epochs=default_epochs if epochs is None else epochs, lr=3e-3,
                     seed=seed, progress=progress, label=f"{name} float training")
    return model.eval()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eie.golden.examples", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="output folder")
    parser.add_argument("--only", choices=sorted(EXAMPLES), action="append", help="train only these")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, help="training epochs (default: per example)")
    parser.add_argument("--json", action="store_true", help="print one JSON object (files, accuracy)")
    args = parser.parse_args(argv)
    from .models import accuracy
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {}
    for name in args.only or list(EXAMPLES):
        model = train_example(name, seed=args.seed, epochs=args.epochs,
                              progress=lambda m: print(m, file=sys.stderr, flush=True))
        X_train, y_train, X_test, y_test = example_data(name)
        torch.save(model, out / f"{name}.pt")
        np.savez(out / f"{name}.npz", X_train=X_train, y_train=y_train, X_test=X_test, y_test=y_test)
        result[name] = {"model": str(out / f"{name}.pt"), "data": str(out / f"{name}.npz"),
                        "accuracy": accuracy(model, X_test, y_test)}
        if not args.json:
            print(f"{name}: test accuracy {result[name]['accuracy']:.2%}; eie compress --model {out / name}.pt "
                  f"--data {out / name}.npz --pes 4 -o build/{name}")
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    # Through the package, so that the saved modules' classes are eie.golden.examples.*, not __main__.*
    from eie.golden.examples import main as _main
    sys.exit(_main())
