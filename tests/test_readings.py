"""One reading of the paper's units, chosen explicitly (issue 29): the chain step's convention
(``eta_units``) and whether beta sits inside L_C (``lc_beta``)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from synthetic import cli_main, make_workspace, tiny_pretrain
from test_contrastive import T_K, ToyModel, target_frames

from crmse_cli.errors import CrmseError
from crmse_cli.train.contrastive import ContrastiveConfig, ContrastiveTrainer
from crmse_cli.train.readings import eta_beta_scaled_A2, kT_eV, lc_scale
from crmse_cli.units import EV_PER_KCAL_PER_MOL, KB_KCAL_PER_MOL_K, beta
from crmse_cli.workspace import Workspace


def test_the_consistent_ev_reading_of_the_papers_eta() -> None:
    kt_ev = KB_KCAL_PER_MOL_K * 500.0 * EV_PER_KCAL_PER_MOL  # k_B T in eV from the named constants
    assert kT_eV(500.0) == pytest.approx(kt_ev, rel=1e-12)
    assert kt_ev == pytest.approx(0.04309, rel=1e-3)
    step = eta_beta_scaled_A2(4e-4, "A2_per_eV", 500.0)
    assert step == pytest.approx(4e-4 * kt_ev, rel=1e-12)
    assert round(step, 7) == 1.72e-5  # the number
    assert eta_beta_scaled_A2(4e-4, "A2", 500.0) == 4e-4  # today's reading: unchanged
    with pytest.raises(ValueError, match="eta_units"):
        eta_beta_scaled_A2(4e-4, "furlongs", 500.0)


def test_beta_inside_lc_or_not() -> None:
    assert lc_scale(True, "eV", 500.0) == beta(500.0)  # today's L_C: dimensionless
    assert lc_scale(False, "eV", 500.0) == EV_PER_KCAL_PER_MOL  # the gap in eV
    assert lc_scale(False, "kcal", 500.0) == 1.0
    # In eV the two readings of one lambda differ by beta in 1/eV: ~23x at 500 K.
    ratio = lc_scale(True, "eV", 500.0) / lc_scale(False, "eV", 500.0)
    assert ratio == pytest.approx(1.0 / kT_eV(500.0)) and 23.0 < ratio < 23.5


def test_config_defaults_are_todays_behaviour_and_bad_choices_are_refused() -> None:
    c = ContrastiveConfig()
    assert (c.eta_units, c.lc_beta) == ("A2", True)
    assert c.eta_internal_A2 == c.eta_A2 and c.lc_scale == beta(c.temperature_K)
    hot = ContrastiveConfig(eta_units="A2_per_eV", chain_temperature_K=1000.0)
    assert hot.eta_internal_A2 == pytest.approx(4e-4 * kT_eV(1000.0))  # the chains' kT
    with pytest.raises(ValueError, match="eta_units must be one of A2, A2_per_eV"):
        ContrastiveConfig(eta_units="eV")
    with pytest.raises(CrmseError, match="lc_beta must be true or false"):
        ContrastiveConfig(lc_beta="yes")  # type: ignore[arg-type]


def test_an_old_run_config_reads_as_the_defaults() -> None:
    from crmse_cli.stages.regularize import _config_from_run

    old = {"lambda_": 0.015, "lambda_units": "eV", "eta_A2": 4e-4, "grad_clip": 100.0, "init": "raw"}
    cfg = _config_from_run({"contrastive": old}, device="cpu").contrastive
    assert (cfg.eta_units, cfg.lc_beta, cfg.eta_internal_A2) == ("A2", True, 4e-4)


def one_update(cfg: ContrastiveConfig) -> tuple[ContrastiveTrainer, ToyModel, ToyModel]:
    """One CRMSE update of the toy model; returns the trainer, the model after and before."""
    x, e, f = target_frames(40, seed=1)
    model = ToyModel(depth=6.0)
    before = copy.deepcopy(model)
    trainer = ContrastiveTrainer(model, list(model.parameters()), x, e, f, cfg)
    trainer.record = next(iter(trainer.updates()))  # type: ignore[attr-defined]
    return trainer, model, before


TOY = ContrastiveConfig(
    eta_A2=0.02, steps_per_update=5, n_chains=6, n_updates=1, temperature_K=T_K, lr=0.01,
    warmup_updates=0, batch_size=8, tconf_every=0, seed=0,
)  # fmt: skip


@pytest.mark.parametrize("lc_beta", [True, False])
def test_lc_is_the_explicit_formula_of_its_reading(lc_beta: bool) -> None:
    """The default update's L_C gradient equals beta (grad <U>_data - grad <U>_chains), computed
    here by hand from the batch and chains the update used (the formula before the option)."""
    cfg = ContrastiveConfig(**{**TOY.__dict__, "lc_beta": lc_beta})
    trainer, _, before = one_update(cfg)
    record = trainer.record  # type: ignore[attr-defined]
    assert trainer.last_batch is not None
    batch = trainer.x[trainer.last_batch]
    factor = 1.0 / (KB_KCAL_PER_MOL_K * T_K) if lc_beta else EV_PER_KCAL_PER_MOL
    loss_c = factor * (before(batch).mean() - before(trainer.chains.detach()).mean())
    grads = torch.autograd.grad(loss_c, list(before.parameters()))
    norm = torch.sqrt(sum(g.pow(2).sum() for g in grads))
    assert record.grad_norm_c == pytest.approx(float(norm), rel=1e-9)
    assert record.loss_c == pytest.approx(float(loss_c.detach()), rel=1e-9)


def test_the_per_ev_reading_steps_the_chains_as_its_beta_scaled_twin() -> None:
    step = TOY.eta_A2
    per_ev = ContrastiveConfig(**{**TOY.__dict__, "eta_A2": step / kT_eV(T_K), "eta_units": "A2_per_eV"})
    assert per_ev.eta_internal_A2 == pytest.approx(step, rel=1e-12)
    a, model_a, _ = one_update(TOY)
    b, model_b, _ = one_update(per_ev)
    torch.testing.assert_close(a.chains, b.chains, rtol=1e-9, atol=1e-12)
    for pa, pb in zip(model_a.parameters(), model_b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=1e-9, atol=1e-12)
    # A 23x smaller step really moves the chains less than the beta-scaled reading of the number.
    c, _, _ = one_update(ContrastiveConfig(**{**TOY.__dict__, "eta_units": "A2_per_eV"}))
    start = a.x[: TOY.n_chains]
    assert (c.chains - start).norm() < (a.chains - start).norm()


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.delenv("CRMSE_DB_URL", raising=False)
    monkeypatch.setenv("CRMSE_NO_PROGRESS", "1")
    w = make_workspace(tmp_path / "home")
    monkeypatch.setenv("CRMSE_HOME", str(w.home))
    return w


TINY_ARGS = ("--chains", "2", "--steps-per-update", "2", "--updates", "1", "--batch-size", "4")


def test_the_cli_takes_both_readings_records_them_and_show_prints_the_effective_values(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from crmse_cli.registry.store import Registry

    tiny_pretrain(ws)
    args = ("--eta-units", "A2_per_eV", "--no-lc-beta", "--name", "per-ev")
    code, _, err = cli_main(monkeypatch, capsys, "regularize", "--from", "tiny", *TINY_ARGS, *args)
    assert code == 0, err
    run = Registry.open(ws).get_run("per-ev")
    assert (run.config["eta_units"], run.config["lc_beta"]) == ("A2_per_eV", False)
    assert run.config["contrastive"]["eta_units"] == "A2_per_eV"
    assert run.config["eta_beta_scaled_A2"] == pytest.approx(4e-4 * kT_eV(500.0))
    code, out, err = cli_main(monkeypatch, capsys, "show", "per-ev")
    assert code == 0, err
    flat = " ".join(out.split())
    assert "eta = 1.723e-05 Å² (beta-scaled)" in flat and "Å²/eV" in flat
    assert "in eV (no beta)" in flat and "0.3459 per kcal/mol" in flat  # 531.8 x 0.015 / 23.06
    # Refusals: one line, exit 2 or 1, no run registered.
    n_runs = len(Registry.open(ws).list_runs())
    code, _, err = cli_main(monkeypatch, capsys, "regularize", "--from", "tiny", "--eta-units", "eV")
    assert code == 2 and "'eV' is not one of A2, A2_per_eV" in err  # a usage error, as click's
    assert len(Registry.open(ws).list_runs()) == n_runs
    code, out, err = cli_main(monkeypatch, capsys, "regularize", "--help")
    assert "--eta-units" in out and "--no-lc-beta" in out


def test_show_reads_an_old_run_as_the_defaults(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from crmse_cli.registry.store import Registry

    reg = Registry.open(ws)
    old = {"lambda": 0.015, "lambda_units": "eV", "lambda_internal": 7.977, "eta_A2": 4e-4,
           "contrastive": {"temperature_K": 500.0, "eta_A2": 4e-4}}  # fmt: skip
    run = reg.create_run(kind="regularize", name="old", config=old, seed=0)
    reg.log_metric(run.id, name="eta_beta_kmax", value=0.96, unit="1", step=0)
    code, out, err = cli_main(monkeypatch, capsys, "--json", "show", "old")
    assert code == 0, err and json.loads(out)["run"]["name"] == "old"
    code, out, err = cli_main(monkeypatch, capsys, "show", "old")
    flat = " ".join(out.replace("│", " ").split())  # the table's cells wrap at any terminal width
    assert "eta = 0.0004 Å² (beta-scaled)" in flat and "eta*beta*k_max = 0.96" in flat
    assert "dimensionless" in flat and "8.028 per kcal/mol" in flat
