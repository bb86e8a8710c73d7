"""python -m dlcore.distributed.train under torchrun: two "nodes" on 127.0.0.1, one
node with two processes resuming a checkpoint, and a node whose peer never comes
(torchrun's join timeout, shortened from its 600 s). Every subprocess has a
timeout."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from distributed_fixtures import time_limit  # noqa: F401  (autouse hard limit)

pytestmark = pytest.mark.distributed
LIMIT_S = 150
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]  # what `torchrun` runs
TRAIN = ["-m", "dlcore.distributed.train", "--data", "blobs", "--samples", "400",
         "--hidden", "32", "--batch-size", "16"]  # fmt: skip
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _finish(processes: list[subprocess.Popen], timeout: float) -> list[str]:
    """Each process's output; all are killed if any outlives ``timeout``."""
    deadline, outputs = time.monotonic() + timeout, []
    try:
        for p in processes:
            out, _ = p.communicate(timeout=max(0.1, deadline - time.monotonic()))
            outputs.append(out)
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.wait()
    return outputs


def test_two_nodes_on_one_machine_train_and_rank_0_alone_reports(tmp_path: Path):
    port = str(_free_port())
    nodes = [
        subprocess.Popen(
            [
                *TORCHRUN,
                "--nnodes=2",
                f"--node-rank={node}",
                "--nproc-per-node=1",
                "--master-addr=127.0.0.1",
                f"--master-port={port}",
                *TRAIN,
                "--epochs",
                "2",
                "--json",
                str(tmp_path / f"node{node}.json"),
                "--checkpoint",
                str(tmp_path / "ckpt.pt"),
            ],
            cwd=tmp_path,
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for node in (0, 1)
    ]
    outputs = _finish(nodes, timeout=120)
    assert [p.returncode for p in nodes] == [0, 0], outputs
    assert "2 ranks (gloo), global batch 32" in outputs[0]
    assert "Epoch: 2 |" in outputs[0] and "Epoch" not in outputs[1]  # rank 0 logs
    record = json.loads((tmp_path / "node0.json").read_text())
    assert not (tmp_path / "node1.json").exists()  # rank 0 writes
    assert record["world_size"] == 2 and len(record["history"]) == 2
    assert record["history"][-1]["val_accuracy"] > 0.9  # separable blobs
    assert (tmp_path / "ckpt.pt").is_file()


def test_one_node_two_processes_accumulate_and_resume(tmp_path: Path):
    flags = [
        "--standalone",
        "--nproc-per-node=2",
    ]  # a free port, chosen by torchrun
    common = [*TRAIN, "--accumulate", "2", "--bucket-cap-mb", "0.01",
              "--checkpoint", str(tmp_path / "ckpt.pt"),
              "--json", str(tmp_path / "h.json")]  # fmt: skip
    first = subprocess.Popen(
        [*TORCHRUN, *flags, *common, "--epochs", "1"], cwd=tmp_path, env=ENV,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    (out,) = _finish([first], timeout=100)
    assert first.returncode == 0, out
    assert "global batch 64" in out  # 16 per rank x 2 accumulated x 2 ranks
    second = subprocess.Popen(
        [*TORCHRUN, *flags, *common, "--epochs", "2", "--resume"], cwd=tmp_path,
        env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    (out,) = _finish([second], timeout=100)
    assert second.returncode == 0, out
    assert "Epoch: 1 |" not in out and "Epoch: 2 |" in out  # epoch 1 came from disk
    history = json.loads((tmp_path / "h.json").read_text())["history"]
    assert [r["epoch"] for r in history] == [1.0, 2.0]


def test_a_node_whose_peer_never_joins_fails_after_the_join_timeout(tmp_path: Path):
    lonely = subprocess.Popen(
        [*TORCHRUN, "--nnodes=2", "--nproc-per-node=1", "--rdzv-backend=c10d",
         f"--rdzv-endpoint=127.0.0.1:{_free_port()}", "--rdzv-conf=join_timeout=5",
         "--max-restarts=0", *TRAIN, "--epochs", "1"],
        cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    start = time.monotonic()
    (out,) = _finish([lonely], timeout=60)
    assert lonely.returncode != 0
    assert time.monotonic() - start < 60
    assert "RendezvousTimeoutError" in out
