"""Ctrl-C on `python -m bench run`: one line saying what is recorded and how to resume, exit status 130."""

import bench.cli
from bench.records import append, records_path


def test_ctrl_c_prints_one_line_and_exits_130(tmp_path, monkeypatch, capsys):
    def interrupted_sweep(cases, out, **options):
        for key in ("a", "b"):
            append(out, {"key": key, "status": "ok"})
        append(out, {"key": "c", "status": "skipped"})  # never started: not counted as recorded
        raise KeyboardInterrupt

    monkeypatch.setattr(bench.cli, "run_and_report", interrupted_sweep)
    argv = [
        "run",
        "--models",
        "gmm",
        "--estimators",
        "sdo",
        "--steps",
        "2",
        "--out",
        str(tmp_path),
        "--quiet",
    ]
    assert bench.cli.main(argv) == 130
    err = capsys.readouterr().err
    expected = (
        f"interrupted; 2 cases recorded in {records_path(tmp_path)}; run the same command again to resume\n"
    )
    assert err == expected
