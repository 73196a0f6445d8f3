from __future__ import annotations

import argparse

import pytest

from parcelguard import __version__, cli


def _subcommand_paths(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> list[tuple[str, ...]]:
    paths = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                paths += _subcommand_paths(sub, (*prefix, name))
    return paths


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    paths = _subcommand_paths(cli.build_parser())
    assert ("lab", "up") in paths and ("lab", "down") in paths and ("lab", "status") in paths
    for path in paths:
        with pytest.raises(SystemExit) as info:
            cli.main([*path, "--help"])
        assert info.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith("usage: parcelguard"), path
        assert len(out.splitlines()) > 3, f"{path} has no real help"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert capsys.readouterr().out.strip() == f"parcelguard {__version__}"


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["lab", "up", "--hosts", "5", "--fleet", "x.yml"])
    assert info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_input_errors_are_one_line_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["lab", "up", "--hosts", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("parcelguard: error: --hosts must be between 4 and 200")


def test_bad_lab_name_is_refused_before_anything_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["lab", "status", "--name", "../etc"]) == 2
    assert "invalid lab name" in capsys.readouterr().err
