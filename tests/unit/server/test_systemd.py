"""`parcelguard schedule`: unit files that systemd accepts, a sandboxed service, clean removal."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from parcelguard.cli import main
from parcelguard.server.systemd import ScanTimer, quote, render


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "inventory.yml"
    path.write_text("all:\n  hosts:\n    web1: {ansible_host: 192.0.2.10}\n", encoding="utf-8")
    return path


def test_exec_arguments_are_quoted_for_systemd() -> None:
    assert quote('a "b" 100% $HOME \\x') == r'"a \"b\" 100%% $$HOME \\x"'
    with pytest.raises(Exception, match="line break"):
        quote("a\nExecStartPre=/bin/sh")


def test_the_service_is_sandboxed_and_the_timer_catches_up(inventory: Path, tmp_path: Path) -> None:
    service, timer = render(
        ScanTimer("nightly", inventory, "*-*-* 02:00:00", limit="dmz", store=tmp_path / "s.db")
    )
    for line in (
        "Type=oneshot",
        "StateDirectory=parcelguard",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "SuccessExitStatus=1",
        "UMask=0077",
    ):
        assert line in service
    assert '"--limit" "dmz"' in service and f'"{tmp_path / "s.db"}"' in service
    assert "Persistent=true" in timer and "OnCalendar=*-*-* 02:00:00" in timer
    assert f'ReadWritePaths=-"{tmp_path}"' in service  # the store's own folder
    default, _ = render(ScanTimer("n", inventory, "daily", user="pgscan"))
    assert "User=pgscan" in default and '"/var/lib/parcelguard/scans.db"' in default
    assert "ReadWritePaths" not in default and "XDG_STATE_HOME=/var/lib" in default


def test_install_list_remove(
    inventory: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    units = tmp_path / "units"
    base = ["--unit-dir", str(units), "--no-enable"]
    assert (
        main(
            [
                "schedule",
                "install",
                "nightly",
                "-i",
                str(inventory),
                "--on-calendar",
                "*-*-* 02:00",
                *base,
            ]
        )
        == 0
    )
    service = units / "parcelguard-scan-nightly.service"
    timer = units / "parcelguard-scan-nightly.timer"
    assert service.exists() and timer.exists()
    if shutil.which("systemd-analyze"):
        proc = subprocess.run(
            ["systemd-analyze", "verify", str(service), str(timer)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
    # A second install of the same name needs --replace.
    assert main(["schedule", "install", "nightly", "-i", str(inventory), *base]) == 2
    assert "--replace" in capsys.readouterr().err
    assert main(["schedule", "list", "--unit-dir", str(units)]) == 0
    assert "nightly\t*-*-* 02:00:00" in capsys.readouterr().out
    assert main(["schedule", "remove", "nightly", *base]) == 0
    assert not service.exists() and not timer.exists()
    assert main(["schedule", "remove", "nightly", *base]) == 2


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--on-calendar", "someday"], "invalid --on-calendar"),
        (["--user", "Root Admin"], "not a login name"),
        (["--roster", "/nonexistent.csv"], "does not exist"),
    ],
)
def test_bad_input_is_refused_and_writes_nothing(
    inventory: Path,
    tmp_path: Path,
    extra: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if extra[0] == "--on-calendar" and not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze checks calendar expressions")
    units = tmp_path / "units"
    code = main(
        [
            "schedule",
            "install",
            "x",
            "-i",
            str(inventory),
            *extra,
            "--unit-dir",
            str(units),
            "--no-enable",
        ]
    )
    assert code == 2 and message in capsys.readouterr().err
    assert not units.exists() or not list(units.iterdir())
