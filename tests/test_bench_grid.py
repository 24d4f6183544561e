"""bench.grid, bench.cli validation, bench.tables marking and bench.targets verdicts (no sweeps: fast)."""

import pandas as pd
import pytest

import sdo
from bench import cli, tables, targets
from bench.grid import FLOORS, Case, expand, product_dict


def test_product_dict_is_the_full_product():
    points = list(product_dict(a=[1, 2], b=["x", "y", "z"]))
    assert len(points) == 6 and {"a": 2, "b": "z"} in points


def test_quick_grid_has_every_registered_estimator_and_the_floors_per_group():
    cases = expand("quick")
    groups = {c.group for c in cases}
    for g in groups:
        names = {c.estimator for c in cases if c.group == g}
        assert set(FLOORS) <= names
    gmm10 = {c.estimator for c in cases if c.group == ("gmm", "ddim", 10, "latent", "float32", "cpu")}
    assert gmm10 == set(sdo.estimators.names()) | set(FLOORS)
    assert {(c.model, c.steps) for c in cases} >= {("gmm", 50), ("unet-tiny", 50), ("ddpm-cifar10", 50)}


def test_override_filters_values_in_the_grid_and_replaces_others():
    only_gmm = expand("quick", model=["gmm"], steps=[10])
    assert {(c.model, c.steps) for c in only_gmm} == {("gmm", 10)}
    swapped = expand("full", model=["unet-tiny"], steps=[2], device=["cpu"], rounds=[1])
    assert {(c.model, c.steps, c.device, c.rounds) for c in swapped} == {("unet-tiny", 2, "cpu", 1)}
    assert {c.estimator for c in swapped} >= {"sdo", "bptt", *FLOORS}


def test_bptt_runs_first_in_each_group_and_keys_are_unique():
    cases = expand("tiny")
    assert len({c.key for c in cases}) == len(cases)
    firsts = {}
    for c in cases:
        firsts.setdefault(c.group, c.estimator)
    assert set(firsts.values()) == {"bptt"}


def test_exact_reference_dtype_is_float64_for_small_models_only():
    assert Case("unet-tiny", "ddim", 10, "latent", "sdo").exact_dtype == "float64"
    assert Case("ddpm-cifar10", "ddim", 10, "latent", "sdo").exact_dtype == "float32"
    assert Case("ddpm-cifar10", "ddim", 10, "latent", "sdo", exact="float64").exact_dtype == "float64"


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--models", "nope"], "valid: "),
        (["--estimators", "sdo,nope"], "bptt"),
        (["--wrt", "everything"], "latent"),
        (["--grid", "huge"], "quick"),
        (["--retry", "maybe"], "oom"),
        (["--rounds", "0"], "--rounds"),
    ],
)
def test_cli_rejects_bad_input_naming_the_valid_choices(args, needle, capsys, tmp_path):
    assert cli.main(["run", "--out", str(tmp_path), *args]) == 2
    assert needle in capsys.readouterr().err
    assert not (tmp_path / "raw").exists()


def _row(estimator, status="ok", **kw):
    base = dict(key=estimator, estimator=estimator, model="m", sampler="ddim", steps=10, wrt="latent")
    base.update(dtype="float32", device="cpu", status=status, time_median_s=1.0, peak_mem_bytes=2**20)
    base.update(saved_bytes=2**20, flops=10**9, cos_to_exact=0.5, rel_err_to_exact=1.0)
    return {**base, **kw}


def test_tables_show_the_status_of_a_failed_case_instead_of_numbers():
    df = tables.frame([_row("bptt"), _row("boom", "oom", time_median_s=123.456), _row("nan", "nonfinite")])
    md = tables.markdown(df)
    boom = next(line for line in md.splitlines() if "| boom |" in line)
    assert "oom" in boom and "123" not in boom and not any(ch.isdigit() for ch in boom.split("| oom |", 1)[1])
    assert "nonfinite" in next(line for line in md.splitlines() if "| nan |" in line)
    assert df.loc[df.estimator == "boom", "time_x_bptt"].isna().all()
    assert "oom" in tables.latex(df) and r"\toprule" in tables.latex(df)


def test_targets_report_holds_and_misses_from_the_numbers():
    at20 = dict(steps=20)
    rows = [
        _row("floor-sample", time_median_s=1.0, **at20),
        _row("floor-step", time_median_s=0.5, peak_mem_bytes=100 * 2**20, **at20),
        _row("sdo", time_median_s=1.6, peak_mem_bytes=101 * 2**20, saved_bytes=2**20, **at20),
        _row("adjoint", time_median_s=10.0, **at20),
        _row("sdo", steps=10, saved_bytes=2**20),
        _row("bptt", steps=10, saved_bytes=10 * 2**20),
        _row("bptt", steps=20, saved_bytes=20 * 2**20),
        _row("bptt", steps=40, saved_bytes=40 * 2**20),
    ]
    got = {t.claim: t.holds for t in targets.evaluate(pd.DataFrame(rows))}
    assert got["SDO time <= 1.05 x (floor-sample + floor-step)"] is False  # 1.6 s / 1.5 s
    assert got["SDO time <= 0.10 x adjoint"] is False  # 1.6 s / 10 s
    assert got["SDO time <= 0.10 x reversible"] is None  # not measured
    assert got["SDO peak memory <= 1.05 x floor-step peak"] is True  # 101 / 100
    assert got["BPTT saved bytes grow linearly in N"] is True
    assert got["SDO saved bytes flat in N (max/min <= 1.05)"] is True
    rows[-1]["saved_bytes"] = 90 * 2**20  # no longer linear
    got = {t.claim: t.holds for t in targets.evaluate(pd.DataFrame(rows))}
    assert got["BPTT saved bytes grow linearly in N"] is False
