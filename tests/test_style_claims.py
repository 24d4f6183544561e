"""Style guidance: SDO against each method on the same latents, and the paper's Table 2 claim rows."""

import numpy as np
import pandas as pd
import pytest

from sdo.tasks.report import claims
from sdo.tasks.style import paired_methods


def samples(method: str, losses, kept, variable: str = "x_N", seed: int = 0) -> pd.DataFrame:
    n = len(losses)
    return pd.DataFrame(
        dict(seed=seed, sample=range(n), variable=variable, method=method)
        | dict(style_loss=losses, style_ratio=np.asarray(losses) / 10, class_kept=kept)
    )


def test_methods_are_paired_on_the_latents_stored_for_both():
    df = pd.concat(
        [
            samples("sdo", [1.0, 2.0, 3.0, 4.0], [True, False, True, False]),
            samples("adjoint", [2.0, 4.0, 6.0], [True, True, True]),  # sample 3 not stored yet
            samples("adjoint", [9.0] * 4, [False] * 4, variable="x_t"),  # another variable: not paired
        ]
    )
    (row,) = paired_methods(df, planned={"sdo": 4, "adjoint": 4}).to_dict("records")
    planned = paired_methods(df, {"sdo": 4, "adjoint": 4, "reversible": 4}, ["sdo", "adjoint", "reversible"])
    assert list(planned.n_pairs) == [3, 0]  # a planned method with nothing stored yet is listed, unpaired
    assert (row["comparison"], row["n_pairs"], row["n_pairs_planned"], row["complete"]) == (
        "sdo vs adjoint",
        3,
        4,
        False,
    )
    assert row["style_loss_other_minus_ref"] == pytest.approx(2.0)  # mean of 1, 2, 3
    assert (row["reference_style_loss"], row["other_style_loss"]) == pytest.approx((2.0, 4.0))
    assert (row["kept_only_by_reference"], row["kept_only_by_other"]) == (0, 1)
    assert row["reference_kept_pct"] == pytest.approx(200 / 3)


def write_pairs(path, lo: float, hi: float, n: int = 192) -> None:
    pd.DataFrame(
        dict(comparison=["sdo vs adjoint", "sdo vs reversible"], n_pairs=[n, n], n_pairs_planned=[192, 192])
        | dict(reference_style_loss=[1.0, 1.0], other_style_loss=[2.0, 2.0])
        | dict(style_loss_other_minus_ref=[1.0, 1.0], diff_lo=[lo, lo], diff_hi=[hi, hi])
        | dict(reference_kept_pct=[80.0, 80.0], other_kept_pct=[100.0, 100.0])
    ).to_csv(path / "style-methods.csv", index=False)


@pytest.mark.parametrize(
    "lo, hi, n, expected",
    [(0.5, 1.5, 192, "reproduces"), (-1.5, -0.5, 192, "contradicts"), (-0.5, 1.5, 192, "inconclusive")]
    + [(0.5, 1.5, 5, "inconclusive")],  # too few pairs for a bootstrap verdict
)
def test_the_style_loss_verdict_follows_the_interval_of_other_minus_sdo(tmp_path, lo, hi, n, expected):
    write_pairs(tmp_path, lo, hi, n)
    table = claims(tmp_path).set_index("claim")
    rows = table[table.index.str.contains("lower style loss")]
    assert list(rows.index.str.extract(r"than (\w+)")[0]) == ["AdjointDPM", "DOODL"]
    assert set(rows.verdict) == {expected}
    assert "own coupled sampler" in rows.filter(like="DOODL", axis=0).ours.item()


def test_a_planned_method_without_stored_latents_is_not_measured_yet(tmp_path):
    write_pairs(tmp_path, np.nan, np.nan, n=0)
    rows = claims(tmp_path).set_index("claim").filter(like="lower style loss", axis=0)
    assert all(o.startswith("not measured yet") for o in rows.ours)
    assert set(rows.verdict) == {"inconclusive"}
