"""The Hinton et al. 2015 reproduction's pieces that need no training: error counting with the
3 output's bias raised, the table's width, and its command line's checks."""

from __future__ import annotations

import pytest
import torch

from reproduce.hinton_distillation import COLUMNS, PAPER, errors, main, row


def test_errors_count_all_and_the_threes_with_the_bias_raised() -> None:
    y = torch.tensor([3, 3, 1, 0])
    z = torch.zeros(4, 10)
    z[0, 3], z[1, 5], z[2, 1], z[3, 3] = 1.0, 1.0, 2.0, 1.5  # wrong: rows 1 and 3
    z[1, 3] = 0.5  # a 3 that a raise of more than 0.5 recovers
    assert errors(z, y) == (2, 1)
    assert errors(z, y, shift=0.75) == (1, 0)
    assert errors(z, y, shift=2.5) == (2, 0)  # now the 1 is called a 3 too
    assert z[1, 3] == 0.5  # the logits are not changed


def test_the_table_fits_the_page() -> None:
    lines = [
        row("seed", COLUMNS, "s"),
        row("paper", PAPER),
        row("0", PAPER, "12345"),
    ]
    assert max(map(len, lines)) <= 78
    assert len({len(line) for line in lines}) == 1  # the columns line up


def test_the_command_line_refuses_zero_epochs() -> None:
    with pytest.raises(SystemExit):
        main(["--teacher-epochs", "0"])
