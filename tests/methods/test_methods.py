"""Continual-learning methods: each trains 2 tasks end to end; method-specific checks against references."""

from __future__ import annotations

import json

import pytest
import torch
from tiny_models import build, make_batch
from tiny_runs import run_killed, save_tiny_model, tiny_config, write_tiny_benchmark

from migu.data.task import Task
from migu.engine.config import ConfigError, MethodConfig, run_config_from_dict
from migu.engine.runner import resume_run, run
from migu.methods import EWC, MTL, IncLoRA, Method, PerTaskFT, make_method
from migu.methods.ewc import ewc_penalty
from migu.methods.olora import olora_penalty


def _tasks(n_train=(20, 12, 8)) -> list[Task]:
    return [
        Task(
            name=f"t{i}",
            labels=("a", "b"),
            train=[{"sentence": f"s{i}-{j}", "label": "ab"[j % 2]} for j in range(n)],
            test=[{"sentence": f"x{i}", "label": "a"}],
            instruction="",
        )
        for i, n in enumerate(n_train)
    ]


@pytest.fixture(scope="module")
def engine_dirs(tmp_path_factory):
    base = tmp_path_factory.mktemp("methods")
    return save_tiny_model(base / "bert", "bert"), write_tiny_benchmark(base / "bench")


@pytest.mark.parametrize(
    "name, extra",
    [
        ("ft", {}),
        ("lora", {}),
        ("inclora", {}),
        ("olora", {"olora_lambda2": 0.1}),
        ("ewc", {"ewc_samples": 4}),
        ("mtl", {}),
        ("moelora", {}),
        ("ft_per_task", {}),
        ("ft", {"replay_fraction": 0.25}),
        ("lora", {"replay_fraction": 0.25}),
    ],
)
def test_each_method_trains_two_tasks_with_migu(name, extra, engine_dirs, tmp_path):
    model_dir, bench = engine_dirs
    cfg = tiny_config(model_dir, bench, tmp_path, **{"train.max_steps_per_task": 2})
    cfg["method"] = {"name": name, **extra}
    result = run(run_config_from_dict(cfg), show_progress=False)
    assert len(result.matrix) == 3 and all(len(r) == 2 for r in result.matrix)
    state = json.loads((result.run_dir / "state.json").read_text())
    assert state["status"] == "finished"
    # MTL learns everything in the first phase: the second phase has no step.
    assert result.metrics["optimizer_steps"] == (2 if name == "mtl" else 4)
    assert 0.0 < result.metrics["mean_update_fraction"] < 0.6  # MIGU masked whatever the method trains


def _lora_params(model, adapter: str) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if f".{adapter}." in n}


def _sgd_steps(model, method: Method, t: int, steps: int = 3) -> None:
    opt = torch.optim.SGD(method.trainable_parameters(model), lr=0.5)
    for s in range(steps):
        model(**make_batch("bert", seed=10 * t + s)).loss.backward()
        opt.step()
        opt.zero_grad()


def test_inclora_keeps_earlier_adapters_bit_identical_and_active():
    cfg = MethodConfig(name="inclora", lora_dropout=0.0)
    method = make_method(cfg, _tasks(), seed=0)
    model = method.setup(build("bert"))
    method.begin_task(0, model)
    _sgd_steps(model, method, 0)
    after_first = _lora_params(model, "task0")
    assert any(n.endswith("lora_B.task0.weight") and v.abs().sum() > 0 for n, v in after_first.items())
    method.begin_task(1, model)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad and ".lora_" in n}
    assert trainable and all(".task1." in n for n in trainable)
    assert model.base_model.active_adapters == ["task0", "task1"]
    _sgd_steps(model, method, 1)
    for n, v in _lora_params(model, "task0").items():
        assert torch.equal(v, after_first[n]), n
    # The second adapter learned, and the first still shapes the output.
    assert any(v.abs().sum() > 0 for n, v in _lora_params(model, "task1").items() if "lora_B" in n)
    batch = make_batch("bert", seed=99)
    model.eval()
    with torch.no_grad():
        both = model(**batch).logits
        model.base_model.set_adapter(["task1"])
        only_new = model(**batch).logits
    assert not torch.equal(both, only_new)


def test_olora_penalty_equals_the_official_loop():
    cfg = MethodConfig(name="olora", olora_lambda1=0.5, olora_lambda2=0.3)
    method = make_method(cfg, _tasks(), seed=0)
    model = method.setup(build("bert"))
    for t in (0, 1, 2):
        method.begin_task(t, model)
        _sgd_steps(model, method, t, steps=1)  # B != 0 for a non-trivial L2 term
    # O-LoRA's uie_trainer_lora.py: for every old lora_A, |A_old A_new^T| summed; L2 norms of the new
    # adapter's matrices. Written here over parameter names, in float64.
    params = dict(model.named_parameters())
    ortho, l2 = 0.0, 0.0
    for name, p in params.items():
        if ".lora_A.task2." in name:
            for old in ("task0", "task1"):
                a_old = params[name.replace(".task2.", f".{old}.")].double()
                ortho += (a_old @ p.double().T).abs().sum().item()
        if ".task2." in name and ".lora_" in name:
            l2 += p.double().norm().item()
    expected = 0.5 * ortho + 0.3 * l2
    assert olora_penalty(model, 2, 0.5, 0.3).item() == pytest.approx(expected, rel=1e-5)
    assert olora_penalty(model, 0, 0.5, 0.0).item() == 0.0  # no old adapter, no L2 weight


def test_replay_buffer_holds_the_share_of_each_past_task_only():
    tasks = _tasks((20, 12, 8))
    method = make_method(MethodConfig(name="ft", replay_fraction=0.25), tasks, seed=3)
    assert method.training_items(0) == [(tasks[0], r) for r in tasks[0].train]
    method.end_task(0, torch.nn.Linear(1, 1), ctx=None)
    assert len(method.replay) == 5 and all(task is tasks[0] for task, _ in method.replay)
    items = method.training_items(1)
    assert len(items) == 12 + 5
    method.end_task(1, torch.nn.Linear(1, 1), ctx=None)
    shares = [sum(task is t for task, _ in method.replay) for t in tasks]
    assert shares == [5, 3, 0]  # round(0.25 * 20), round(0.25 * 12), none of the current task
    for task, r in method.replay:
        assert r in task.train
    # The buffer survives a checkpoint.
    other = make_method(MethodConfig(name="ft", replay_fraction=0.25), tasks, seed=3)
    other.load_state_dict(method.state_dict())
    assert other.replay == method.replay


def test_ewc_penalty_and_fisher_equal_references(engine_dirs):
    g = torch.Generator().manual_seed(0)
    theta = {"w": torch.randn(4, 3, generator=g), "b": torch.randn(4, generator=g)}
    consolidated = [
        {n: (torch.rand(v.shape, generator=g), torch.randn(v.shape, generator=g)) for n, v in theta.items()}
        for _ in range(2)
    ]
    expected = 0.0
    for past in consolidated:
        for n, (f, s) in past.items():
            expected += float((f.double() * (theta[n].double() - s.double()) ** 2).sum())
    assert ewc_penalty(theta, consolidated, 7.0).item() == pytest.approx(3.5 * expected, rel=1e-6)

    # Fisher: the mean of squared per-example gradients, recomputed here one example at a time.
    from transformers import AutoTokenizer

    from migu.engine.families import make_family
    from migu.methods.base import MethodContext

    model_dir, _ = engine_dirs
    tok = AutoTokenizer.from_pretrained(model_dir)
    tasks = _tasks((6,))
    family = make_family(
        "encoder", tok, max_length=32, max_target_length=4, labels=["a", "b"], max_new_tokens=2
    )
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=2)
    method = make_method(MethodConfig(name="ewc", ewc_samples=6), tasks, seed=0)
    assert isinstance(method, EWC)
    method.end_task(0, model, MethodContext(family, torch.device("cpu")))
    fisher = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    model.eval()
    for r in tasks[0].train:
        model.zero_grad()
        family.loss(model, family.training_batch([(tasks[0], r)])).backward()
        for n, p in model.named_parameters():
            fisher[n] += p.grad**2
    (stored,) = method.consolidated
    for n, (f, star) in stored.items():
        torch.testing.assert_close(f, fisher[n] / 6)
        assert torch.equal(star, dict(model.named_parameters())[n].detach())


def test_mtl_and_per_task_ft():
    tasks = _tasks()
    mtl = make_method(MethodConfig(name="mtl"), tasks, seed=0)
    assert isinstance(mtl, MTL)
    assert len(mtl.training_items(0)) == 40 and mtl.training_items(1) == [] and mtl.training_items(2) == []
    per = make_method(MethodConfig(name="ft_per_task"), tasks, seed=0)
    assert isinstance(per, PerTaskFT)
    model = per.setup(build("bert"))
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    per.begin_task(0, model)
    _sgd_steps(model, per, 0)
    assert any(not torch.equal(v, initial[k]) for k, v in model.state_dict().items())
    per.begin_task(1, model)
    assert all(torch.equal(v, initial[k]) for k, v in model.state_dict().items())


def test_methods_that_change_trainable_sets_refuse_ddp_and_bad_names():
    with pytest.raises(ValueError, match="DDP"):
        IncLoRA(MethodConfig(name="inclora"), _tasks(), 0, num_processes=2)
    make_method(MethodConfig(name="lora"), _tasks(), 0, num_processes=2)  # one adapter throughout: fine
    with pytest.raises(ConfigError, match="method.name='sgd' is not one of: (.*, )?ewc, ft, ft_per_task"):
        MethodConfig(name="sgd")


def test_a_user_method_in_one_file(engine_dirs, tmp_path, monkeypatch):
    (tmp_path / "my_method.py").write_text(
        "import torch\n"
        "from migu.methods import Method, register\n"
        "CALLS = []\n"
        "@register('shrink')\n"
        "class Shrink(Method):\n"
        "    def penalty(self, model, t):\n"
        "        CALLS.append(t)\n"
        "        return 1e-3 * sum(p.pow(2).sum() for p in self.trainable_parameters(model))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    model_dir, bench = engine_dirs
    cfg = tiny_config(model_dir, bench, tmp_path / "out", **{"train.max_steps_per_task": 2})
    cfg["method"] = {"name": "shrink", "module": "my_method"}
    run(run_config_from_dict(cfg), show_progress=False)
    import my_method

    assert my_method.CALLS == [0, 0, 1, 1]  # one penalty per micro-batch


@pytest.mark.slow
@pytest.mark.parametrize("name", ["inclora", "ewc"])
def test_resume_rebuilds_method_state_bit_identically(name, engine_dirs, tmp_path):
    model_dir, bench = engine_dirs
    cfg = tiny_config(
        model_dir, bench, tmp_path, **{"train.max_steps_per_task": 4, "train.checkpoint_every": 2}
    )
    cfg["method"] = {"name": name, "replay_fraction": 0.25, "ewc_samples": 4}
    full = run(run_config_from_dict({**cfg, "name": "full"}), show_progress=False)
    run_killed(cfg, tmp_path, after_steps=7)
    resumed = resume_run(tmp_path / "killed", show_progress=False)
    assert resumed.matrix == full.matrix
    from safetensors.torch import load_file

    a = load_file(str(full.run_dir / "checkpoint" / "model.safetensors"))
    b = load_file(str(resumed.run_dir / "checkpoint" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_moelora_router_sees_all_experts():
    from migu.methods import MoELoRA
    from migu.methods.moelora import MoELoRALinear

    tasks = _tasks()
    method = make_method(MethodConfig(name="moelora", lora_dropout=0.0), tasks, seed=0)
    assert isinstance(method, MoELoRA)
    model = method.setup(build("bert"))
    layers = [m for m in model.modules() if isinstance(m, MoELoRALinear)]
    assert len(layers) == 4  # query and value of 2 blocks
    base_before = {n: p.detach().clone() for n, p in model.named_parameters() if ".base." in n}
    _sgd_steps(model, method, 0, steps=2)
    for layer in layers:
        x = torch.randn(2, 5, layer.base.in_features)
        g = layer.gates(x)  # (2, 5, 3)
        assert g.shape == (2, 5, len(tasks)) and (g > 0).all()
        torch.testing.assert_close(g.sum(-1), torch.ones(2, 5))
        # After two steps every expert's B has moved away from zero and the router has learned.
        assert all(b.weight.abs().sum() > 0 for b in layer.lora_B)
    for n, p in model.named_parameters():
        if ".base." in n:
            assert torch.equal(p, base_before[n]), n  # the pretrained layer stays frozen
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any(".router." in n for n in trainable) and any(n.startswith("classifier.") for n in trainable)


def test_component_ablation_masks_only_the_named_layers(engine_dirs, tmp_path):
    """Paper Table 5: MIGU on a subset of q, k, v, o, FFN; here on `query` only, one AdamW step."""
    from safetensors.torch import load_file

    model_dir, bench = engine_dirs
    cfg = tiny_config(model_dir, bench, tmp_path, **{"train.max_steps_per_task": 1})
    cfg["data"]["tasks"] = ["agnews"]
    cfg["migu"] = {"enabled": True, "threshold": 0.5, "targets": ["query"]}
    result = run(run_config_from_dict(cfg), show_progress=False)
    before = load_file(str(model_dir / "model.safetensors"))
    after = load_file(str(result.run_dir / "checkpoint" / "model.safetensors"))
    checked = set()
    for name, w0 in before.items():
        if ".layer." not in name or not name.endswith(".weight") or w0.dim() != 2:
            continue  # the linear layers of the blocks: q, k, v, o and the FFN
        w1 = after["bert." + name]
        moved = (w1 != w0).any(dim=1)  # (d_out,) rows that changed
        layer = name.split(".")[-2]
        if layer == "query":
            assert int(moved.sum()) == w0.shape[0] // 2, name  # floor(0.5 * d_out) rows masked
        else:
            assert bool(moved.all()), name  # not a target: every row updated
        checked.add(layer)
    assert {"query", "key", "value", "dense"} <= checked


@pytest.mark.parametrize(
    "migu_extra", [{"criterion": "gradient"}, {"clusters": 4, "cluster_by": "magnitude"}]
)
def test_criteria_and_clusters_run_in_the_engine(migu_extra, engine_dirs, tmp_path):
    model_dir, bench = engine_dirs
    cfg = tiny_config(model_dir, bench, tmp_path, **{"train.max_steps_per_task": 2})
    cfg["migu"] = {"enabled": True, "threshold": 0.5, **migu_extra}
    result = run(run_config_from_dict(cfg), show_progress=False)
    assert result.metrics["optimizer_steps"] == 4
    assert result.metrics["mean_update_fraction"] < 1.0


def test_olora_per_task_lambda1():
    tasks = _tasks()
    method = make_method(MethodConfig(name="olora", olora_task_lambda1={"t1": 2.0}), tasks, seed=0)
    model = method.setup(build("bert"))
    for t in (0, 1):
        method.begin_task(t, model)
        _sgd_steps(model, method, t, steps=1)
    base = olora_penalty(model, 1, 1.0, 0.0)
    assert base.item() > 0
    torch.testing.assert_close(method.penalty(model, 1), 2.0 * base)
    with pytest.raises(ConfigError, match="olora_task_lambda1.t1=-1"):
        MethodConfig(name="olora", olora_task_lambda1={"t1": -1})


def test_osf_merges_each_task_and_freezes_a_growing_share():
    """Between tasks the trained low-rank part is merged into the weight (the function is kept), and
    the new split freezes t/T of each weight's rank."""
    import peft
    from peft.tuners.osf.layer import OSFLayer

    from migu.methods.osf import OSF, preserved_fraction

    tasks = [object()] * 4
    method = OSF(MethodConfig(name="osf"), tasks, seed=0)
    model = method.setup(build("bert"))
    batch = make_batch("bert", seed=3)
    assert [preserved_fraction(t, 4) for t in range(4)] == [0.0, 0.25, 0.5, 0.75]
    for t in range(3):
        method.begin_task(t, model)
        layers = [m for m in model.modules() if isinstance(m, OSFLayer)]
        assert layers, "OSF wrapped no layer"
        for layer in layers:
            d = min(layer.get_base_layer().weight.shape)
            assert layer.effective_rank["default"] == (1 if t == 0 else int(d * t / 4))
        assert all(p.requires_grad for p in model.classifier.parameters())  # the new head trains
        trained = [n for n, p in model.named_parameters() if p.requires_grad]
        assert all("osf_svd_params" in n or n.startswith("classifier") for n in trained)
        _sgd_steps(model, method, t)
        model.eval()
        with torch.no_grad():
            before = model(**batch).logits
            method.begin_task(t + 1, model)  # merge, then a new SVD on the merged weights
            after = model(**batch).logits
        model.train()
        torch.testing.assert_close(after, before, atol=1e-4, rtol=1e-4)
        method._tuner.merge_and_unload()  # back to plain layers for the next round of the loop
        method._tuner = None
    assert peft.__version__


def test_osf_refuses_migu():
    from migu.engine.config import ConfigError, RunConfig

    with pytest.raises(ConfigError, match="osf.*do not combine yet"):
        RunConfig(method={"name": "osf"}, migu={"enabled": True})


@pytest.mark.slow
def test_osf_in_the_engine_resumes_bit_identically(engine_dirs, tmp_path):
    model_dir, bench = engine_dirs
    cfg = tiny_config(
        model_dir, bench, tmp_path, **{"train.max_steps_per_task": 4, "train.checkpoint_every": 2}
    )
    cfg["method"] = {"name": "osf"}
    cfg["migu"] = {"enabled": False}
    full = run(run_config_from_dict({**cfg, "name": "full"}), show_progress=False)
    assert full.metrics["optimizer_steps"] == 8
    run_killed(cfg, tmp_path, after_steps=7)  # killed in task 2, after its checkpoint at step 2
    resumed = resume_run(tmp_path / "killed", show_progress=False)
    assert resumed.matrix == full.matrix
    from safetensors.torch import load_file

    a = load_file(str(full.run_dir / "checkpoint" / "model.safetensors"))
    b = load_file(str(resumed.run_dir / "checkpoint" / "model.safetensors"))
    assert a.keys() == b.keys() and any("osf_svd_params" in k for k in a)
    for k in a:
        assert torch.equal(a[k], b[k]), k
