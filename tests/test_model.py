"""DeepLab-v2 layout compatibility, weight loading, heads, frozen BN, optimizer groups, discriminator."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from uplr.errors import UplrError
from uplr.model.deeplab import build_model
from uplr.model.discriminator import build_discriminator
from uplr.model.weights import load_weights

LAYOUT = Path(__file__).resolve().parent / "fixtures/deeplabv2_r101_layout.json"


def _layout(name: str) -> dict[str, list[int]]:
    return json.loads(LAYOUT.read_text())[name]


def _random_state(layout: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    out = {}
    for k, shape in layout.items():
        if k.endswith("num_batches_tracked"):
            out[k] = torch.tensor(int(torch.randint(1, 1000, (), generator=g)), dtype=torch.int64)
        else:
            out[k] = torch.randn(shape, generator=g)
    return out


@pytest.fixture(scope="module")
def multi_state() -> dict[str, torch.Tensor]:
    return _random_state(_layout("deeplabv2_multi_level"))


@pytest.fixture(scope="module")
def r101() -> nn.Module:
    return build_model("resnet101", multi_level=True)


# ---------------------------------------------------------------------------------------- layout
@pytest.mark.slow
@pytest.mark.parametrize("name,multi", [("deeplabv2_multi_level", True), ("deeplabv2_single_level", False)])
def test_layout_matches_peer_state_dict(name: str, multi: bool, multi_state, r101) -> None:
    layout = _layout(name)
    model = r101 if multi else build_model("resnet101", multi_level=False)
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert set(ours) - set(layout) == set()
    assert set(layout) - set(ours) == set()
    assert {k: ours[k] for k in layout} == layout
    state = {k: multi_state[k] for k in layout}
    model.load_state_dict(state, strict=True)
    sd = model.state_dict()
    assert all(torch.equal(sd[k], state[k]) for k in layout)


@pytest.mark.slow
def test_resnet101_forward_tiny(r101) -> None:
    r101.eval()
    with torch.no_grad():
        aux, main = r101(torch.randn(1, 3, 65, 65))
    # 65 -> conv1 /2: 33 -> ceil max-pool: 17 -> layer2 /2: 9
    assert aux.shape == (1, 19, 9, 9) and main.shape == (1, 19, 9, 9)


def test_unknown_trunk() -> None:
    with pytest.raises(UplrError, match="resnet101.*resnet18"):
        build_model("resnet50")


# ---------------------------------------------------------------------------------------- weights
@pytest.mark.slow
def test_load_plain_state_dict_and_checkpoint(tmp_path: Path, multi_state, r101) -> None:
    torch.save(multi_state, tmp_path / "plain.pth")
    rep = load_weights(r101, "plain.pth", base_dir=tmp_path)
    assert rep["source"] == "state_dict" and rep["loaded"] == len(multi_state) and rep["skipped"] == []
    assert torch.equal(r101.state_dict()["layer4.2.conv2.weight"], multi_state["layer4.2.conv2.weight"])

    model = build_model("resnet18", num_classes=5)
    src = build_model("resnet18", num_classes=5)
    torch.save({"model": src.state_dict(), "iteration": 7}, tmp_path / "ckpt.pth")
    rep = load_weights(model, str(tmp_path / "ckpt.pth"))
    assert rep["source"] == "checkpoint"
    for k, v in src.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k


def test_plain_state_dict_mismatch_is_error(tmp_path: Path) -> None:
    torch.save(build_model("resnet18", num_classes=19).state_dict(), tmp_path / "w.pth")
    with pytest.raises(UplrError, match="shape mismatch"):
        load_weights(build_model("resnet18", num_classes=16), str(tmp_path / "w.pth"))
    with pytest.raises(UplrError, match="unexpected keys.*layer5"):
        load_weights(build_model("resnet18", multi_level=False), str(tmp_path / "w.pth"))


def _peer_init(state: dict[str, torch.Tensor], classes: int = 21) -> dict[str, torch.Tensor]:
    """ImageNet/COCO init as ADVENT/AdaptSegNet ship it: 'Scale.' prefix, a classifier for another label set."""
    peer = {f"Scale.{k}": v for k, v in state.items() if not k.startswith(("layer5.", "layer6."))}
    for i in range(4):
        peer[f"Scale.layer5.conv2d_list.{i}.weight"] = torch.randn(classes, 2048, 3, 3)
        peer[f"Scale.layer5.conv2d_list.{i}.bias"] = torch.randn(classes)
    return peer


@pytest.mark.slow
def test_peer_init_loads_backbone_and_skips_foreign_classifier(tmp_path: Path, multi_state, r101,
                                                               caplog) -> None:
    torch.save(_peer_init(multi_state), tmp_path / "init.pth")
    heads_before = {k: v.clone() for k, v in r101.state_dict().items() if k.startswith(("layer5", "layer6"))}
    with caplog.at_level(logging.INFO, logger="uplr.model.weights"):
        rep = load_weights(r101, "init.pth", base_dir=tmp_path)
    assert rep["source"] == "peer_init"
    assert sorted(rep["skipped"]) == sorted(f"layer5.conv2d_list.{i}.{p}" for i in range(4)
                                            for p in ("weight", "bias"))
    assert "layer5" in caplog.text
    sd = r101.state_dict()
    backbone = [k for k in multi_state if not k.startswith(("layer5", "layer6"))]
    assert rep["loaded"] == len(backbone)
    for k in backbone:
        assert torch.equal(sd[k], multi_state[k]), k
    for k, v in heads_before.items():
        assert torch.equal(sd[k], v), k


@pytest.mark.slow
def test_peer_init_missing_backbone_key_is_error(tmp_path: Path, multi_state) -> None:
    peer = _peer_init(multi_state)
    del peer["Scale.layer3.17.conv2.weight"]
    torch.save(peer, tmp_path / "init.pth")
    with pytest.raises(UplrError, match=r"layer3\.17\.conv2\.weight"):
        load_weights(build_model("resnet101"), str(tmp_path / "init.pth"))


@pytest.mark.slow
def test_peer_init_wrong_trunk_is_error(tmp_path: Path, multi_state) -> None:
    torch.save(_peer_init(multi_state), tmp_path / "init.pth")
    with pytest.raises(UplrError, match="backbone"):
        load_weights(build_model("resnet18"), str(tmp_path / "init.pth"))


def test_peer_init_without_num_batches_tracked(tmp_path: Path) -> None:
    src = build_model("resnet18", multi_level=False)
    peer = {f"Scale.{k}": v for k, v in src.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(peer, tmp_path / "init.pth")
    model = build_model("resnet18", multi_level=False)
    rep = load_weights(model, str(tmp_path / "init.pth"))
    assert rep["skipped"] == []  # layer6 fits exactly (same label set), so it is loaded
    assert torch.equal(model.state_dict()["layer6.conv2d_list.2.weight"],
                       src.state_dict()["layer6.conv2d_list.2.weight"])


def test_missing_and_unreadable_file(tmp_path: Path) -> None:
    model = build_model("resnet18")
    with pytest.raises(UplrError, match=r"nope/w\.pth.*DeepLab_resnet_pretrained_imagenet\.pth.*scratch"):
        load_weights(model, "nope/w.pth", base_dir=tmp_path)
    (tmp_path / "bad.pth").write_bytes(b"this is not a checkpoint")
    with pytest.raises(UplrError, match="bad.pth"):
        load_weights(model, str(tmp_path / "bad.pth"))


def test_scratch_loads_nothing(caplog) -> None:
    model = build_model("resnet18")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with caplog.at_level(logging.INFO, logger="uplr.model.weights"):
        rep = load_weights(model, "scratch")
    assert rep["loaded"] == 0 and rep["source"] == "scratch"
    assert "scratch" in caplog.text
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


# ---------------------------------------------------------------------------------------- forward
@pytest.mark.parametrize("multi", [True, False])
def test_resnet18_output_shapes(multi: bool) -> None:
    model = build_model("resnet18", num_classes=7, multi_level=multi).eval()
    with torch.no_grad():
        aux, main = model(torch.randn(2, 3, 64, 128))
    # 64 -> 32 -> ceil((32 + 2 - 3) / 2) + 1 = 17 -> (17 - 1) // 2 + 1 = 9 ; 128 -> 64 -> 33 -> 17
    assert main.shape == (2, 7, 9, 17)
    if multi:
        assert aux is not None and aux.shape == (2, 7, 9, 17)
    else:
        assert aux is None


def _head_inputs(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    feats: dict[str, torch.Tensor] = {}
    hooks = [getattr(model, n).register_forward_hook(lambda m, i, o, n=n: feats.__setitem__(n, i[0]))
             for n in ("layer5", "layer6")]
    with torch.no_grad():
        out = model(x)
    for h in hooks:
        h.remove()
    feats["out"] = out
    return feats


def _branch(head: nn.Module, i: int, x: torch.Tensor) -> torch.Tensor:
    d = (6, 12, 18, 24)[i]
    conv = head.conv2d_list[i]
    return F.conv2d(x, conv.weight, conv.bias, padding=d, dilation=d)


@pytest.mark.parametrize("all_branches", [True, False])
def test_aspp_branches(all_branches: bool) -> None:
    torch.manual_seed(0)
    model = build_model("resnet18", num_classes=3, aspp_all_branches=all_branches).eval()
    for head in (model.layer5, model.layer6):
        assert [c.dilation[0] for c in head.conv2d_list] == [6, 12, 18, 24]
        assert [c.padding[0] for c in head.conv2d_list] == [6, 12, 18, 24]
        for c in head.conv2d_list:
            nn.init.normal_(c.bias)  # make the biases non-zero so they matter in the comparison
    f = _head_inputs(model, torch.randn(1, 3, 200, 200))  # 25x25 features: every dilation sees data
    aux, main = f["out"]
    for name, got in (("layer5", aux), ("layer6", main)):
        head, x = getattr(model, name), f[name]
        branches = [_branch(head, i, x) for i in range(4)]
        full = branches[0] + branches[1] + branches[2] + branches[3]
        # AdaptSegNet returns inside the loop, right after adding the second branch
        buggy = branches[0] + branches[1]
        want, other = (full, buggy) if all_branches else (buggy, full)
        assert torch.allclose(got, want, atol=1e-5)
        assert not torch.allclose(got, other, atol=1e-3)
        assert not torch.allclose(got, branches[0], atol=1e-3)


def test_head_init_std() -> None:
    w = build_model("resnet18").layer6.conv2d_list[0].weight.detach()
    assert 0.009 < float(w.std()) < 0.011 and abs(float(w.mean())) < 1e-3


# ---------------------------------------------------------------------------------------- BN
def _bns(model: nn.Module) -> list[nn.BatchNorm2d]:
    return [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]


@pytest.mark.parametrize("freeze", [True, False])
def test_frozen_bn(freeze: bool) -> None:
    model = build_model("resnet18", num_classes=3, freeze_bn=freeze)
    model.train()
    bns = _bns(model)
    assert len(bns) == 1 + 4 * 2 * 2 + 3  # stem + two BNs per block + three downsample projections
    assert all(bn.training is (not freeze) for bn in bns)
    assert model.layer6.training and model.conv1.training
    assert all(p.requires_grad is (not freeze) for bn in bns for p in bn.parameters())
    before = [(bn.running_mean.clone(), bn.running_var.clone()) for bn in bns]
    model(torch.randn(2, 3, 48, 48))
    changed = [not (torch.equal(bn.running_mean, m) and torch.equal(bn.running_var, v))
               for bn, (m, v) in zip(bns, before, strict=True)]
    assert (not any(changed)) if freeze else all(changed)


# ---------------------------------------------------------------------------------------- optimizer
@pytest.mark.parametrize("freeze,multi", [(True, True), (False, True), (False, False)])
def test_param_groups(freeze: bool, multi: bool) -> None:
    model = build_model("resnet18", freeze_bn=freeze, multi_level=multi)
    groups = model.param_groups(lr=2.5e-4)
    ids = [id(p) for g in groups for p in g["params"]]
    trainable = [id(p) for p in model.parameters() if p.requires_grad]
    assert len(ids) == len(set(ids)) and sorted(ids) == sorted(trainable)
    heads = {id(p) for name in ("layer5", "layer6") if getattr(model, name) is not None
             for p in getattr(model, name).parameters()}
    for g in groups:
        is_head = {id(p) in heads for p in g["params"]}
        assert len(is_head) == 1
        if is_head.pop():
            assert g["lr"] == pytest.approx(2.5e-3) and g["lr_mult"] == 10.0
        else:
            assert g["lr"] == pytest.approx(2.5e-4) and g["lr_mult"] == 1.0
    assert len(groups) == 2
    torch.optim.SGD(groups, lr=2.5e-4, momentum=0.9)  # accepted as-is by an optimizer


# ---------------------------------------------------------------------------------------- discriminator
def test_discriminator() -> None:
    d = build_discriminator(19)
    convs = [d.conv1, d.conv2, d.conv3, d.conv4, d.classifier]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(19, 64), (64, 128), (128, 256), (256, 512),
                                                                (512, 1)]
    assert all(c.kernel_size == (4, 4) and c.stride == (2, 2) and c.padding == (1, 1) for c in convs)
    x = torch.randn(1, 19, 64, 128)
    with torch.no_grad():
        y = d(x)
        ref = x
        for c in convs[:4]:
            ref = F.leaky_relu(F.conv2d(ref, c.weight, c.bias, stride=2, padding=1), 0.2)
        ref = F.conv2d(ref, d.classifier.weight, d.classifier.bias, stride=2, padding=1)
    assert y.shape == (1, 1, 2, 4)  # 64 / 2^5, 128 / 2^5
    assert torch.allclose(y, ref, atol=1e-6)
    assert build_discriminator(5, ndf=8).conv4.out_channels == 64


def test_half_width_trunk_keeps_the_heads_and_is_smaller():
    full, half = build_model("resnet18"), build_model("resnet18_half")
    assert half.layer4[-1].conv2.out_channels == full.layer4[-1].conv2.out_channels // 2 == 256
    assert set(half.state_dict()) == set(full.state_dict())  # same names, narrower tensors
    n_full = sum(p.numel() for p in full.parameters())
    n_half = sum(p.numel() for p in half.parameters())
    assert n_half < 0.3 * n_full
    aux, main = half(torch.randn(1, 3, 64, 128))
    assert aux.shape == main.shape == (1, 19, 9, 17)
