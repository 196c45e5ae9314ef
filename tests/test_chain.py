"""Table 3 as a chain: +TGAA continues the +SR model, +UPST continues the +TGAA model with every component.

On tiny fakes (64x32, a few steps): the +TGAA trainer starts from the +SR weights *and* discriminators
(and not from the init weights), its learning rate goes on from where the chain stopped; one +UPST step
has the source term (drawn with TGAA's last weights), the adversarial term with the discriminator
updated, and the pseudo-label term; a continued row's MLflow run names its parent run.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from uplr.config import load_config
from uplr.runtime import init_distributed
from uplr.stages import class_stats, train_sr, train_tgaa, train_upst
from uplr.train import checkpoint as ckpt
from uplr.train.loop import Trainer, _stream

OVERRIDES = ["translate.out=data/src", "tgaa.iterations=4", "tgaa.stages=2", "tgaa.k=3", "upst.iterations=2",
             "upst.bins=64"]


@pytest.fixture
def chain(tiny_params, tracking, tmp_path):
    """class_stats and a trained +SR model (6 steps) on the fakes; the source stands in for its translation."""
    cfg = load_config(tiny_params, OVERRIDES)
    counts = tmp_path / "stats.npz"
    class_stats.run(cfg, counts)
    train_sr.run(cfg, "sr", 0, tmp_path / "sr", None, "train_sr@0", {"class_stats": counts})
    return cfg, counts, tmp_path


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)


def test_tgaa_starts_from_the_sr_model_and_its_discriminators(chain, tiny_params):
    cfg, counts, tmp = chain
    sr = tmp / "sr/model.pt"
    args = {"init_model": sr, "class_stats": counts}
    job, inputs = train_tgaa.build(cfg, "tgaa", 0, args)
    t = Trainer(cfg, job, init_distributed("cpu"))
    assert _same(t.model.state_dict(), ckpt.load_model_state(sr))
    saved = ckpt.load_discriminators(sr)
    assert saved and all(_same(t.discs[k].state_dict(), saved[k]) for k in saved)
    assert job.iterations == 4 and job.step_offset == 6 and sr in inputs
    # the chain's poly schedule goes on: step 6 of a 10-step chain, not the peak rate
    lr, p = cfg.train.lr, cfg.train.poly_power
    assert t.sched.get_last_lr()[0] == pytest.approx(lr * (1 - 6 / 10) ** p)
    # control: the scratch variant does not start from the +SR weights
    cfg2 = load_config(tiny_params, [*OVERRIDES, "tgaa.init=scratch"])
    job2, _ = train_tgaa.build(cfg2, "tgaa", 0, args)
    assert job2.init_model is None and job2.iterations == cfg2.train.iterations
    assert not _same(Trainer(cfg2, job2, init_distributed("cpu")).model.state_dict(), ckpt.load_model_state(sr))


def test_upst_step_has_source_adversarial_and_pseudo_terms(chain, tracking):
    import mlflow

    from uplr.method.pseudo_pass import write_pseudo_labels
    from uplr.train.rowrun import file_md5

    cfg, counts, tmp = chain
    train_tgaa.run(cfg, "tgaa", 0, tmp / "tgaa", None, "train_tgaa@0", {"init_model": tmp / "sr/model.pt",
                                                                          "class_stats": counts})
    tgaa = tmp / "tgaa/model.pt"
    meta = ckpt.load_meta(tgaa)
    assert meta["chain_step"] == 6 + 4 and len(meta["tgaa_S_k"]) == 3
    model = Trainer(cfg, train_tgaa.build(cfg, "tgaa", 0, {"init_model": tgaa, "class_stats": counts})[0],
                    init_distributed("cpu")).model.eval()
    write_pseudo_labels(cfg, model, torch.device("cpu"), tmp / "pseudo")
    args = {"init_model": tgaa, "class_stats": counts, "pseudo": tmp / "pseudo"}
    job, _ = train_upst.build(cfg, "upst", 0, args)
    assert job.adversarial and job.target is not None and job.pseudo is not None
    assert job.labeled_weights is not None and job.step_offset == 10
    t = Trainer(cfg, job, init_distributed("cpu"))
    assert all(_same(t.discs[k].state_dict(), v) for k, v in ckpt.load_discriminators(tgaa).items())
    before = {k: v.clone() for k, v in t.discs["main"].state_dict().items()}
    streams = [_stream(ds, cfg, job, t.dist, 0, salt) for ds, salt in ((job.labeled, 1), (job.target, 2),
                                                                       (job.pseudo, 3))]
    logs = t.train_step(*(next(s) for s in streams))
    assert {"loss_seg", "loss_adv", "loss_d", "loss_pseudo"} <= set(logs)
    assert all(logs[k] > 0 for k in ("loss_seg", "loss_adv", "loss_d", "loss_pseudo"))
    assert not _same(t.discs["main"].state_dict(), before)  # the discriminator is still updated
    # lineage: the continued run names its parent's run (found by the parent model's md5)
    train_upst.run(cfg, "upst", 0, tmp / "upst", None, "train_upst@0", args)
    client = mlflow.MlflowClient(tracking)
    runs: dict = {}
    for r in client.search_runs([client.get_experiment_by_name(cfg.tracking.experiment).experiment_id],
                                "tags.`uplr.kind` = 'train'", order_by=["attributes.start_time DESC"]):
        runs.setdefault(r.data.tags["uplr.row"], r)  # the newest run of each row: this test's
    assert runs["upst"].data.tags["uplr.parent.run_id"] == runs["tgaa"].info.run_id
    assert runs["upst"].data.tags["uplr.parent.md5"] == file_md5(tgaa)
    assert runs["tgaa"].data.tags["uplr.parent.run_id"] == runs["sr"].info.run_id
    assert Path(tmp / "upst/model.pt").is_file()
