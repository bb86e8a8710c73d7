"""Han et al. (2015), Table 1: LeNet-300-100 on all of MNIST, pruned to 8 % / 9 % / 26 % of
each layer's weights (12x fewer) and retrained, over several seeds — the compression chapter's
shortened run at full length.

Recipe: train the dense network (Adam 1e-3, batch 128), then prune in three steps to Han's
per-layer rates with a fine-tuning epoch after each (dlcore.compress.han_schedule), then retrain
at a tenth of the rate, as the paper does. Prints test error dense -> pruned per seed.

    python -m reproduce.han_pruning --epochs 10 --retrain 10 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

import dlcore
from dlcore.compress import nonzero_params
from dlcore.compress.experiments import han_schedule
from dlcore.data import TensorLoader, load_mnist
from dlcore.models import LeNet300_100
from dlcore.optim import Adam
from dlcore.train import evaluate, fit


def one_seed(
    seed: int, mnist, epochs: int, retrain: int, device
) -> tuple[float, ...]:  # noqa: ANN001
    x = mnist.x_train.reshape(len(mnist.x_train), -1)
    test = [(mnist.x_test.reshape(len(mnist.x_test), -1), mnist.y_test)]
    torch.manual_seed(seed)
    model = LeNet300_100(device=device)
    g = torch.Generator().manual_seed(seed)
    loader = TensorLoader(x, mnist.y_train, batch_size=128, generator=g)
    loss = nn.CrossEntropyLoss()
    fit(model, loss, Adam(model.parameters(), lr=1e-3), loader, epochs=epochs,
        progress=False)  # fmt: skip
    dense_err = 100 * (1 - evaluate(model, test)["accuracy"])
    dense_n = nonzero_params(model)
    schedule = han_schedule(model)
    opt = Adam(model.parameters(), lr=1e-4)  # a tenth of the rate, as the paper
    fit(model, loss, opt, loader, epochs=3 + retrain, callbacks=[schedule],
        progress=False)  # fmt: skip
    pruned_err = 100 * (1 - evaluate(model, test)["accuracy"])
    return dense_err, pruned_err, dense_n / nonzero_params(model)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--retrain", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args(argv)
    device = dlcore.get_device()
    mnist = load_mnist(normalize=True)
    print(
        f"{'seed':>4s} {'dense err %':>12s} {'pruned err %':>13s} {'fewer':>7s} {'s':>6s}"
    )
    rows = []
    for seed in args.seeds:
        t0 = time.perf_counter()
        row = one_seed(seed, mnist, args.epochs, args.retrain, device)
        rows.append(row)
        print(f"{seed:4d} {row[0]:12.2f} {row[1]:13.2f} {row[2]:6.1f}x "
              f"{time.perf_counter() - t0:6.0f}", flush=True)  # fmt: skip
    dense, pruned = [r[0] for r in rows], [r[1] for r in rows]
    print(f"mean {statistics.mean(dense):12.2f} {statistics.mean(pruned):13.2f}"
          "   (Han et al. 2015: 1.64 -> 1.59 at 12x)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
