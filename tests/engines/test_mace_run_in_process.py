"""``run_mace_train`` runs mace in this process: its status, its log, and nothing left behind."""

from __future__ import annotations

import logging

import torch

from aiida_mofmlp.engines.mace.common import run_mace_train


def test_bad_arguments_give_status_2_and_a_readable_log(tmp_path):
    root = logging.getLogger()
    handlers, threads = list(root.handlers), torch.get_num_threads()
    log = tmp_path / "mace_train.log"
    status = run_mace_train(["--name=model", "--no_such_option=1"], log)
    assert status == 2
    text = log.read_text()
    assert text.startswith("# mace_run_train --name=model")
    assert "unrecognized arguments: --no_such_option=1" in text
    assert root.handlers == handlers  # no handler of mace's left on the root logger
    assert torch.get_num_threads() == threads


def test_a_failure_inside_mace_is_a_traceback_in_the_log_and_status_1(tmp_path):
    log = tmp_path / "mace_train.log"
    missing = tmp_path / "missing.extxyz"
    status = run_mace_train(
        [
            "--name=model",
            f"--train_file={missing}",
            f"--work_dir={tmp_path}",
            "--device=cpu",
            "--E0s=average",
        ],
        log,
    )
    text = log.read_text()
    assert status == 1, text
    assert "Traceback" in text and "missing.extxyz" in text
