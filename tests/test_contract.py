"""The adapter contract, checked for every registered model (a new model is tested with no new test code)."""
from __future__ import annotations

import pytest
import torch

from common import registry
from common.config import resolve
from common.train import build_optimizer
from common.transforms import image_size
from tests.parity import fill_state_dict, fixtures, key_table, load_fixture, seeded_input

MODELS = registry.model_names()
NUM_CLASSES = 7


def _build(name: str, num_classes: int = NUM_CLASSES, overrides: dict | None = None):
    adapter = registry.get_adapter(name)
    cfg = resolve(name, "synthetic", "full", overrides)
    torch.manual_seed(0)
    task = adapter.build(num_classes, cfg, [10 + i for i in range(num_classes)])
    return adapter, cfg, task


def _batch(size: int, n: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 3, size, size, generator=g), torch.tensor([0, 3, 6, 3][:n])


@pytest.mark.parametrize("name", MODELS)
def test_forward_step_predict(name: str) -> None:
    adapter, cfg, task = _build(name)
    assert hasattr(task, "net"), "the task must expose the authors'-key network as task.net"
    x, y = _batch(image_size(adapter.input_spec, cfg))
    task.train()
    task.on_epoch_start(0)
    out = task(x, y)
    assert out["loss"].ndim == 0 and torch.isfinite(out["loss"])
    assert out["logits"].shape == (len(y), NUM_CLASSES)

    trainable = {n: p for n, p in task.named_parameters() if p.requires_grad}
    before = {n: p.detach().clone() for n, p in trainable.items()}
    opt = build_optimizer(task.param_groups(), cfg["train"])
    grouped = {id(p) for g in opt.param_groups for p in g["params"]}
    assert grouped == {id(p) for p in trainable.values()}, "param_groups must hold every trainable parameter"
    out["loss"].backward()
    no_grad = [n for n, p in trainable.items() if p.grad is None or not torch.any(p.grad != 0)]
    assert not no_grad, f"parameters without gradient: {no_grad[:10]}"
    opt.step()
    unchanged = [n for n, p in trainable.items() if torch.equal(p.detach(), before[n])]
    assert not unchanged, f"parameters not changed by one step: {unchanged[:10]}"
    task.on_epoch_end(0)

    task.eval()
    with torch.no_grad():
        logits = task.predict(x)
    assert logits.shape == (len(y), NUM_CLASSES)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", MODELS)
def test_other_class_counts(name: str) -> None:
    adapter, cfg, task = _build(name, num_classes=8)
    x, y = _batch(image_size(adapter.input_spec, cfg), n=2)
    task.eval()
    with torch.no_grad():
        assert task.predict(x).shape == (2, 8)


@pytest.mark.parametrize("path", fixtures(), ids=lambda p: p.stem)
def test_parity_with_authors_network(path) -> None:
    """Same keys and shapes as the authors' class; same eval logits (< 1e-5) from the same weights."""
    fx = load_fixture(path)
    from common.config import parse_overrides

    _, _, task = _build(fx["model"], fx["num_classes"], parse_overrides(fx["overrides"]))
    ours = key_table(task.net.state_dict())
    assert set(ours) == set(fx["keys"]), (
        f"missing {sorted(set(fx['keys']) - set(ours))[:10]}, extra {sorted(set(ours) - set(fx['keys']))[:10]}")
    assert ours == {k: v for k, v in fx["keys"].items()}, "shapes or dtypes differ from the authors'"
    task.net.load_state_dict(fill_state_dict(fx["keys"], fx["seed"]), strict=True)
    dtype = getattr(torch, fx.get("dtype", "float32"))
    task.to(dtype).eval()
    with torch.no_grad():
        logits = task.predict(seeded_input(fx["input_shape"], fx["seed"]).to(dtype)).double()
    expected = torch.tensor(fx["logits"], dtype=torch.float64)
    assert (logits - expected).abs().max().item() < 1e-5


def test_unknown_model_lists_valid_names() -> None:
    with pytest.raises(KeyError, match="valid models: .*dan"):
        registry.get_adapter("no-such-model")


def test_duplicate_registration_fails() -> None:
    from common.adapter import Adapter

    class Other(Adapter):
        pass

    with pytest.raises(ValueError, match="registered twice"):
        registry.register("dan")(Other)


def test_registered_name_is_the_folder_name() -> None:
    from common.adapter import Adapter

    class Other(Adapter):  # defined in tests/test_contract.py: its folder is `tests`
        pass

    with pytest.raises(ValueError, match="registered as 'other' but lives in the folder 'tests'"):
        registry.register("other")(Other)


def test_an_adapter_cannot_declare_what_meta_holds() -> None:
    from common.adapter import Adapter, InputSpec

    class Declares(Adapter):
        input_spec = InputSpec(size=32)
        pretrained_files = ("w.pth",)

    with pytest.raises(ValueError, match=r"declares input_spec, pretrained_files; .* under `meta:` in .*config.yaml"):
        registry.register("tests")(Declares)


@pytest.mark.parametrize("name", MODELS)
def test_model_facts_are_data(name: str) -> None:
    """Display name, input and weight files come from `meta:` in config.yaml, the same for the adapter
    and the torch-free harness; the README says where to get every weight file."""
    from common.config import model_dirs
    from common.meta import model_meta
    from harness.names import model_name

    meta, adapter = model_meta(name), registry.get_adapter(name)
    assert (adapter.display_name, adapter.input_spec, adapter.pretrained_files, adapter.pretrained_aliases) == \
        (meta.display_name, meta.input, meta.pretrained_files, meta.pretrained_aliases)
    assert model_name(name) == meta.display_name
    readme = (model_dirs()[name] / "README.md").read_text(encoding="utf-8")
    missing = [f for f in meta.pretrained_files if f not in readme]
    assert not missing, f"models/{name}/README.md does not say where to get {missing}"


@pytest.mark.parametrize("name", MODELS)
def test_model_folder_is_complete(name: str) -> None:
    """Every model folder carries its network, adapter, recipe and README, and has an image recipe:
    its own Dockerfile, or the shared docker/model.Dockerfile that copies models/<MODEL>."""
    from common.config import model_dirs
    from harness.images import dockerfile_for, model_files

    folder = model_dirs()[name]
    for required in ("network.py", "adapter.py", "config.yaml", "README.md"):
        assert (folder / required).is_file(), f"models/{name}/{required} is missing"
    dockerfile = dockerfile_for(name).read_text()
    assert "FROM" in dockerfile and ("COPY models/${MODEL} models/${MODEL}" in dockerfile
                                     or f"COPY models/{name} models/{name}" in dockerfile)
    assert folder / "adapter.py" in model_files(name)  # what the image tag is computed from
    for dataset in ("rafdb", "fer2013", "ferplus", "expw", "sfew", "ckplus", "synthetic"):
        for profile in ("full", "quick"):
            resolve(name, dataset, profile)  # every recipe resolves: no unknown keys anywhere
