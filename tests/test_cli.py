"""The `dyadic` command line as a user runs it: tables, files written, one-line errors."""

from __future__ import annotations

import json

import pytest

from dyadic.engine.cli import main
from dyadic.engine.offline.replay import exact_rate


def test_cli_data_ls_table_and_json(sample_root, capsys):
    assert main(["data", "ls", str(sample_root)]) == 0
    out = capsys.readouterr().out
    assert "V00_S0809_I00000582" in out and "29.970" in out and "react" in out
    assert "empty placeholder" in out  # the skipped bundle is reported, named
    assert main(["data", "ls", str(sample_root), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    ids = [row["id"] for row in data["interactions"]]
    assert "V01_S0346_I00000725" in ids and len(ids) == 6
    v01 = next(r for r in data["interactions"] if r["id"] == "V01_S0346_I00000725")
    assert not any(g.startswith("movement:") for g in v01["groups"])  # non-V00: no face features
    assert any("P1694" in p for p in data["skipped"])


def test_cli_data_sample_writes_the_react_layout(tmp_path, capsys):
    out = tmp_path / "react_sample"
    assert (
        main(["data", "sample", str(out), "--format", "react", "--interactions", "1", "--seconds", "4", "--seed", "3"])
        == 0
    )
    assert capsys.readouterr().out.strip() == str(out)
    assert list(out.rglob("facial-attributes/speaker/session*/*.npy"))
    assert list(out.rglob("coefficients/listener/session*/*.npy"))


def test_cli_replay_end_to_end(sample_root, tmp_path, capsys, decode_mp4):
    out = tmp_path / "clip.mp4"
    code = main(
        [
            "replay",
            "V01_S0346_I00000725_P1690",
            "--data",
            str(sample_root),
            "--out",
            str(out),
            "--seconds",
            "1",
            "--size",
            "320x240",
            "-q",
        ]
    )
    assert code == 0
    assert capsys.readouterr().out.strip() == str(out)
    frames, rate, _ = decode_mp4(out)
    assert len(frames) == 30 and rate == exact_rate(30000 / 1001)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["replay", "V99_S0000_I00000000", "--seconds", "1"], "V99_S0000_I00000000"),
        (["data", "ls", "/nonexistent/folder"], "no such folder"),
        (["data", "sample", "/tmp/dyadic-never-written", "--seconds", "1"], "at least 3 s"),
    ],
)
def test_cli_errors_are_one_clear_line(sample_root, capsys, argv, message):
    if argv[0] == "replay":
        argv = argv + ["--data", str(sample_root)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("dyadic: error:") and message in err[-1]


@pytest.mark.parametrize(
    "argv",
    [
        ["replay", "--size", "640by480"],
        ["replay", "--seconds", "-1"],
        ["data", "sample", "x", "--interactions", "0"],
        ["serve", "--port", "80000"],
    ],
)
def test_cli_rejects_bad_options(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_user_errors_are_one_line_without_a_traceback(sample_root, tmp_path, capsys):
    import socket

    def error(argv: list[str]) -> str:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert "Traceback" not in err and err.startswith("dyadic: error:"), err
        return err.splitlines()[-1]

    assert "no SMPL-H or SMPL-X model in" in error(["serve", "--body-model", str(tmp_path), "--port", "0"])
    assert "give a name ending in .mp4" in error(["replay", "--out", str(tmp_path / "x.avi")])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        err = error(["serve", "--port", str(port), "--data", str(sample_root), "--model", "none"])
    assert f"cannot listen on 127.0.0.1:{port}" in err and "--port 0 picks a free one" in err


def test_version_help_and_the_default_data(capsys):
    import argparse

    from dyadic.engine.cli.main import build_parser

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.startswith("dyadic 0.")

    def undocumented(parser: argparse.ArgumentParser, where: str) -> list[str]:
        out = []
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    out += undocumented(sub, f"{where} {name}")
            elif not action.help:
                out.append(f"{where} {'/'.join(action.option_strings) or action.dest}")
        return out

    assert undocumented(build_parser(), "dyadic") == []
    assert main(["data", "ls"]) == 0  # no DIR: the embedded sample
    out, err = capsys.readouterr()
    assert "V00_S0809_I00000582" in out
    assert err.count("V01_S0346_I00000726_P1694.npz") <= 1  # a known problem is said once


def test_a_clip_that_was_skipped_says_why(sample_root, capsys):
    """The sample holds an empty placeholder, as the real dataset does: asking for it names the
    file and the reason, not "no such interaction"."""
    code = main(["replay", "V01_S0346_I00000726", "--data", str(sample_root), "--seconds", "0.1", "-q"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2
    assert err.startswith("dyadic: error: V01_S0346_I00000726: skipped: V01_S0346_I00000726_P")
    assert "empty placeholder" in err
