"""FSDP2 (``fully_shard``) with 2 CPU processes (gloo) gives the weights and masks of one process.

Each family is launched once (``torchrun --nproc_per_node 2 fsdp_worker.py``) and runs all its
cases in one process group; the worker itself checks the shard layout, the agreement of the ranks'
masks and, in strict mode, that masked rows of every rank's shards do not change in a step.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

# pytest puts this directory on sys.path (no __init__.py): the worker's builders are shared.
from fsdp_worker import (
    GLOBAL_BATCH,
    LR,
    STEPS,
    THRESHOLD,
    WEIGHT_DECAY,
    batch_family,
    build_model,
    parse_case,
)
from launch import assert_close_up_to_adam_noise, run_launch, torchrun
from tiny_models import make_batch

import migu

WORKER = Path(__file__).with_name("fsdp_worker.py")

# Per family, the cases of its one launch: MODE:CRITERION[:MESH[:fast]] (see fsdp_worker.py).
CASES = {
    "llama": ["grad:output", "strict:output", "grad:output:fsdp:fast", "errors"],
    # d_out 33 and 37: uneven shards (17/16, 19/18 rows); every criterion; HSDP (Replicate x Shard).
    "llama_odd": [
        "grad:output",
        "strict:output",
        "grad:weight",
        "strict:gradient",
        "strict:random",
        "strict:weight:hsdp",
    ],
    # Conv1D: weight (d_in, d_out) sharded on d_in, so the units (columns) are whole on each rank.
    "gpt2": ["grad:output", "strict:output", "strict:weight", "grad:gradient"],
}
RUNS = [(family, case) for family, cases in CASES.items() for case in cases if case != "errors"]


@pytest.fixture(scope="module")
def fsdp_results(tmp_path_factory):
    """Family -> case -> the worker's results; each family launched once, when first needed."""
    cache: dict[str, dict] = {}

    def get(family: str) -> dict:
        if family not in cache:
            out = tmp_path_factory.mktemp("fsdp") / f"{family}.pt"
            proc = run_launch(lambda: torchrun(str(WORKER), str(out), family, *CASES[family]), timeout=600)
            assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
            cache[family] = torch.load(out, weights_only=False)
        return cache[family]

    return get


def _single_process(family: str, case: str):
    """One process on the global batch: final weights, and every step's masks and scores."""
    spec = parse_case(case)
    model = build_model(family)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    # The fast path falls back to dense under FSDP2: compare "fast" runs with the dense path.
    config = migu.MiguConfig(threshold=THRESHOLD, mode=spec["mode"], criterion=spec["criterion"], seed=3)
    handle = migu.attach(model, config, optimizer=opt)
    masks, scores = [], []
    for step in range(STEPS):
        model(**make_batch(batch_family(family), batch=GLOBAL_BATCH, seed=100 + step)).loss.backward()
        opt.step()
        opt.zero_grad()
        masks.append(dict(handle.masks))
        scores.append(dict(handle.magnitudes))
    return model.state_dict(), masks, scores


@pytest.mark.slow
@pytest.mark.parametrize("family, case", RUNS)
def test_fsdp2_two_processes_equal_one_process(fsdp_results, family, case):
    got = fsdp_results(family)[case]
    state, masks, scores = _single_process(family, case)
    for step in range(STEPS):
        assert masks[step].keys() == got["masks"][step].keys()
        for name in masks[step]:
            assert torch.equal(masks[step][name], got["masks"][step][name]), (step, name)
        if parse_case(case)["criterion"] != "output":
            # Scores assembled from the shards are the full rows' (a sum over replicas would double
            # them without changing any mask). Output magnitudes are a mean over ranks: not compared.
            for name, value in scores[step].items():
                torch.testing.assert_close(got["scores"][step][name], value, rtol=1e-4, atol=1e-6)
    assert state.keys() == got["state"].keys()
    for key, value in state.items():
        mine = got["state"][key]
        if key.endswith("attn.c_attn.bias"):  # GPT-2's query | key | value biases
            # The key bias has an exactly zero true gradient (softmax over keys ignores a shift that
            # is the same for every key), so its gradient is float noise, which Adam normalizes into
            # moves of up to lr * |g| / (|g| + eps): bounded by lr / 10 here, not by float tolerance.
            q, k, v = value.chunk(3)
            torch.testing.assert_close(mine.chunk(3)[1], k, rtol=0, atol=LR / 10, msg=key)
            value, mine = torch.cat([q, v]), torch.cat([mine.chunk(3)[0], mine.chunk(3)[2]])
        # Adam divides by sqrt(v): an element whose gradient is float noise (summation order differs
        # between 2 ranks and 1 process) can move by a noticeable fraction of lr. 1e-5 = lr * 1e-3 for
        # all but 0.1% of the elements, which stay within lr / 10 (see assert_close_up_to_adam_noise).
        assert_close_up_to_adam_noise(
            mine, value, atol=1e-5, outlier_atol=LR / 10, max_outlier_fraction=1e-3, msg=key
        )
    if parse_case(case)["fast"]:
        assert got["fallbacks"] and set(got["fallbacks"].values()) == {"DTensor (FSDP2-sharded) weight"}


@pytest.mark.slow
def test_unsupported_sharded_setups_raise(fsdp_results):
    messages = fsdp_results("llama")["errors"]
    assert "FSDP1" in messages["fsdp1"]
    assert "not sharded by an FSDP2" in messages["tensor_parallel"]
    assert "Shard(dim=1)" in messages["shard_dim1"]
    assert "after migu.attach" in messages["shard_after_attach"]
    for name in ("fsdp1", "tensor_parallel", "shard_dim1"):
        assert "Supported:" in messages[name] and "fully_shard" in messages[name], name


def test_the_adam_noise_tolerance_still_fails_a_row_that_moved():
    """The tolerance of the 2-rank comparisons lets single float-noise elements through, not a fault."""
    expected = torch.zeros(64, 64)  # a weight, 4096 elements
    noise = expected.clone()
    noise[5, 7] = 2.4e-5  # one element moved by float noise, as measured on an Intel Xeon
    assert_close_up_to_adam_noise(
        noise, expected, atol=1e-5, outlier_atol=LR / 10, max_outlier_fraction=1e-3, msg="w"
    )
    row = expected.clone()
    row[3] += LR  # one row updated by one step of lr that the other run did not take: 1.6% of the elements
    with pytest.raises(AssertionError, match="64 of 4096 elements"):
        assert_close_up_to_adam_noise(
            row, expected, atol=1e-5, outlier_atol=LR / 10, max_outlier_fraction=1e-3, msg="w"
        )
    far = expected.clone()
    far[0, 0] = LR  # a single element, but one whole step of lr away
    with pytest.raises(AssertionError, match="largest difference"):
        assert_close_up_to_adam_noise(
            far, expected, atol=1e-5, outlier_atol=LR / 10, max_outlier_fraction=1e-3, msg="w"
        )
