"""Kingma & Ba (2015), section 6.2 / Figure 2, at full size: the chapter's shortened comparison,
run faithfully. A 784-1000-1000-10 ReLU network on all 60,000 MNIST training images, minibatches
of 128, each optimizer at the rate chapter 4's sweep family suggests; prints the training cost
per epoch (the quantity of their Figure 2) and the test accuracy.

    python -m reproduce.kingma_ba_mnist --epochs 5        # ~9 s per epoch and optimizer per core

Not part of `make test`: it takes minutes. `make reproduce` runs it.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

import dlcore
from dlcore.data import TensorLoader, load_mnist
from dlcore.models import MLP
from dlcore.optim import SGD, Adagrad, Adam, RMSprop
from dlcore.train import evaluate, fit

OPTIMIZERS = {  # their Figure 2's methods (AdaDelta from torch: dlcore has none)
    "AdaGrad": lambda ps: Adagrad(ps, lr=1e-2),
    "RMSProp": lambda ps: RMSprop(ps, lr=1e-3),
    "SGDNesterov": lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
    "AdaDelta": lambda ps: torch.optim.Adadelta(ps, lr=1.0),
    "Adam": lambda ps: Adam(ps, lr=1e-3),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    device = dlcore.get_device()
    mnist = load_mnist(normalize=True)
    x = mnist.x_train.reshape(len(mnist.x_train), -1)
    test = [(mnist.x_test.reshape(len(mnist.x_test), -1), mnist.y_test)]
    print(dlcore.env_report())
    print(f"{'optimizer':12s} " + " ".join(f"{'ep ' + str(e):>7s}" for e in
          range(1, args.epochs + 1)) + f" {'test %':>7s} {'s/epoch':>8s}")  # fmt: skip
    for name, make in OPTIMIZERS.items():
        torch.manual_seed(args.seed)
        model = MLP((784, 1000, 1000, 10), device=device)
        g = torch.Generator().manual_seed(args.seed)
        loader = TensorLoader(x, mnist.y_train, batch_size=128, generator=g)
        t0 = time.perf_counter()
        history = fit(model, nn.CrossEntropyLoss(), make(model.parameters()), loader,
                      epochs=args.epochs, progress=False)  # fmt: skip
        seconds = (time.perf_counter() - t0) / args.epochs
        acc = 100 * evaluate(model, test)["accuracy"]
        costs = " ".join(f"{v:7.4f}" for v in history["loss"])
        print(f"{name:12s} {costs} {acc:7.2f} {seconds:8.1f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
