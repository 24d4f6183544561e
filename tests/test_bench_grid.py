"""bench.grid, bench.cli validation, bench.tables marking and bench.targets verdicts (no sweeps: fast)."""

import pandas as pd
import pytest

import sdo
from bench import cli, grid, latex, tables, targets
from bench.grid import FLOORS, Case, every_estimator, expand, product_dict


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
    assert gmm10 == set(every_estimator()) | set(FLOORS)
    assert {"adjointdpm", "doodl"} <= set(sdo.estimators.names()) - gmm10  # presets: their own grids
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
    assert "oom" in latex.latex(df) and r"\toprule" in latex.latex(df)


def _timed(estimator, times, group="g1", **kw):
    """A row with per-round times from one interleaved group run (group_id)."""
    med = sorted(times)[len(times) // 2]
    return _row(estimator, times_s=list(times), time_median_s=med, group_id=group, threads=1, **kw)


def test_targets_give_verdicts_from_paired_intervals():
    at20 = dict(steps=20, load_max_1m=0.5)
    drift = [1.0, 1.5, 2.0, 2.5, 3.0]  # the machine slows during the group: pairing cancels it
    fs = [0.7 * d for d in drift]
    rows = [
        _timed("floor-sample", fs, **at20),
        _timed("floor-step", [0.3 * d for d in drift], peak_mem_bytes=100 * 2**20, **at20),
        _timed("sdo", [0.9 * d for d in drift], peak_mem_bytes=101 * 2**20, saved_bytes=2**20, **at20),
        _timed("adjoint", [0.95 * d for d in drift], **at20),
        _row("sdo", steps=10, saved_bytes=2**20),
        _row("bptt", steps=10, saved_bytes=10 * 2**20),
        _row("bptt", steps=20, saved_bytes=20 * 2**20),
        _row("bptt", steps=40, saved_bytes=40 * 2**20),
    ]
    got = {t.claim: t.verdict for t in targets.evaluate(pd.DataFrame(rows))}
    assert got["SDO time <= 1.05 x (floor-sample + floor-step)"] == "holds"  # 0.9 in every round
    assert got["SDO time <= 0.10 x adjoint"] == "misses"  # 0.95 in every round
    assert got["SDO time <= 0.10 x reversible"] == "not measured"
    assert got["SDO peak memory <= 1.05 x floor-step peak"] == "inconclusive"  # one value: no interval
    assert got["BPTT saved bytes grow linearly in N"] == "holds"
    assert got["SDO saved bytes flat in N (max/min <= 1.05)"] == "holds"
    rows[2]["times_s"] = [1.0 * d for d in drift[:2]] + [1.2 * d for d in drift[2:]]  # straddles 1.05
    got = {t.claim: t.verdict for t in targets.evaluate(pd.DataFrame(rows))}
    assert got["SDO time <= 1.05 x (floor-sample + floor-step)"] == "inconclusive"
    for r in rows[:4]:
        r["load_max_1m"] = 1.6  # above 1 thread + 0.5
    rows[1]["live_peak_bytes"], rows[2]["live_peak_bytes"] = 100 * 2**20, 101 * 2**20
    got = {t.claim: t.verdict for t in targets.evaluate(pd.DataFrame(rows))}
    assert got["SDO time <= 0.10 x adjoint"] == "flagged"
    assert got["SDO peak memory <= 1.05 x floor-step peak"] == "holds"  # live bytes: deterministic, no load
    assert "SDO (memory=floor) peak memory <= 1.05 x floor-step peak" not in got  # no sdo-floor row
    rows.append(_timed("sdo-floor", drift, live_peak_bytes=110 * 2**20, **at20))
    got = {t.claim: t.verdict for t in targets.evaluate(pd.DataFrame(rows))}
    assert got["SDO (memory=floor) peak memory <= 1.05 x floor-step peak"] == "misses"  # 1.10
    rows[7]["saved_bytes"] = 90 * 2**20  # bptt at N = 40: no longer linear
    got = {t.claim: t.verdict for t in targets.evaluate(pd.DataFrame(rows))}
    assert got["BPTT saved bytes grow linearly in N"] == "misses"


def test_ratios_to_bptt_carry_intervals_from_paired_rounds_and_tables_show_the_norm_ratio():
    drift = [1.0, 2.0, 3.0, 4.0, 5.0]
    rows = [
        _timed("bptt", drift, norm_ratio_to_exact=1.0),
        _timed("sdo", [0.5 * d for d in drift], norm_ratio_to_exact=46.0, cos_to_exact=0.63),
    ]
    df = tables.frame(rows)
    sdo_row = df[df.estimator == "sdo"].iloc[0]
    assert (sdo_row.time_x_bptt, sdo_row.time_x_bptt_lo, sdo_row.time_x_bptt_hi) == (0.5, 0.5, 0.5)
    line = next(x for x in tables.markdown(df).splitlines() if "| sdo |" in x)
    assert "| 46.0 |" in line and "0.50× [0.50, 0.50]" in line
    tex = latex.latex(df)
    assert r"\label{tab:accuracy-m}" in tex and "46" in tex and "e-0" not in tex and "e+0" not in tex


def test_accuracy_grid_covers_the_trained_models_three_wrt_and_n_up_to_200_in_float64():
    cases = expand("accuracy")
    assert {c.model for c in cases} == set(grid.TRAINED_MODELS)
    assert {c.wrt for c in cases} == {"latent", "intermediate", "params"}
    assert {c.steps for c in cases} == {10, 25, 50, 100, 200, 500, 1000}
    assert {c.model for c in cases if c.steps > 200} == {"digits-ddpm"}
    assert {c.exact_dtype for c in cases} == {"float64"}
    assert "spsa" not in {c.estimator for c in cases if c.steps == 200}
    assert {"adjointdpm", "doodl"} <= {c.estimator for c in expand("table3")}
