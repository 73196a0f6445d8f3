"""`parcelguard report`: every format or none, one-line errors, store, drift."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from parcelguard import cli
from parcelguard.reports import render
from parcelguard.scanners.model import SCHEMA_VERSION, ScanResult, Status
from parcelguard.scanners.store import ScanStore
from tests.fixtures.synthetic import synthetic_scan

ALL = ("json", "html", "md", "junit.xml", "csv", "pdf")


@pytest.fixture()
def scan_file(tmp_path: Path, scan: ScanResult) -> Path:
    path = tmp_path / "scan.json"
    path.write_text(scan.to_json(), encoding="utf-8")
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["report", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def _no_default_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


def test_all_formats_are_written(
    tmp_path: Path, scan_file: Path, scan: ScanResult, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code, stdout, _err = _run(capsys, "--input", str(scan_file), "-o", str(out))
    assert code == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(f"parcelguard-report-{scan.scan_id}.{ext}" for ext in ALL)
    assert stdout.split() == [str(out / f"parcelguard-report-{scan.scan_id}.{e}") for e in ALL]
    data = json.loads((out / f"parcelguard-report-{scan.scan_id}.json").read_text())
    assert data["summary"]["hosts"] == len(scan.hosts)
    assert not (tmp_path / "state").exists(), "reporting must not create a scan store"


def test_chosen_formats_and_language(
    tmp_path: Path, scan_file: Path, scan: ScanResult, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _o, _e = _run(
        capsys,
        "--input",
        str(scan_file),
        "-o",
        str(tmp_path),
        "-f",
        "html",
        "--format",
        "md,csv",
        "--lang",
        "zh-CN",
    )
    assert code == 0
    stem = f"parcelguard-report-{scan.scan_id}.zh-CN"
    assert {p.name for p in tmp_path.glob("parcelguard-report-*")} == {
        f"{stem}.html",
        f"{stem}.md",
        f"{stem}.csv",
    }
    assert "第29条" in (tmp_path / f"{stem}.html").read_text(encoding="utf-8")


def _assert_one_line_error(code: int, err: str, out_dir: Path, *words: str) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("parcelguard: error: "), err
    for word in words:
        assert word in lines[0]
    assert not list(out_dir.glob("parcelguard-report-*"))
    assert not list(out_dir.glob(".*part"))


def test_unknown_format(
    tmp_path: Path, scan_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _o, err = _run(
        capsys, "--input", str(scan_file), "-o", str(tmp_path), "-f", "html", "-f", "docx"
    )
    _assert_one_line_error(code, err, tmp_path, "docx", "html")


def test_unknown_language(
    tmp_path: Path, scan_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _o, err = _run(capsys, "--input", str(scan_file), "-o", str(tmp_path), "--lang", "fr")
    _assert_one_line_error(code, err, tmp_path, "fr")


def test_corrupt_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema_version": 1, "scan_id": ', encoding="utf-8")
    code, _o, err = _run(capsys, "--input", str(bad), "-o", str(tmp_path))
    _assert_one_line_error(code, err, tmp_path, "bad.json", "not valid JSON")


def test_newer_schema(tmp_path: Path, scan: ScanResult, capsys: pytest.CaptureFixture[str]) -> None:
    newer = tmp_path / "newer.json"
    data = scan.to_dict() | {"schema_version": SCHEMA_VERSION + 1}
    newer.write_text(json.dumps(data), encoding="utf-8")
    code, _o, err = _run(capsys, "--input", str(newer), "-o", str(tmp_path))
    _assert_one_line_error(code, err, tmp_path, "upgrade parcelguard")


def test_missing_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _o, err = _run(capsys, "--input", str(tmp_path / "nope.json"), "-o", str(tmp_path))
    _assert_one_line_error(code, err, tmp_path, "cannot read")


def test_unwritable_output_folder(
    tmp_path: Path, scan_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # /proc refuses new folders even to root, so this holds in CI too.
    code, _o, err = _run(capsys, "--input", str(scan_file), "-o", "/proc/self/reports")
    _assert_one_line_error(code, err, tmp_path, "cannot create output folder", "/proc/self")


def test_output_path_that_is_a_file(
    tmp_path: Path, scan_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "file.txt"
    target.write_text("x")
    code, _o, err = _run(capsys, "--input", str(scan_file), "-o", str(target))
    _assert_one_line_error(code, err, tmp_path, "file.txt")


def test_output_under_a_missing_parent(
    tmp_path: Path, scan_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _o, err = _run(capsys, "--input", str(scan_file), "-o", str(tmp_path / "a" / "b"))
    _assert_one_line_error(code, err, tmp_path, "cannot create output folder")


def test_a_failing_renderer_writes_nothing(
    tmp_path: Path,
    scan_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(_model: object) -> bytes:
        raise RuntimeError("pango is gone")

    monkeypatch.setattr(render, "render_pdf", broken)
    code, _o, err = _run(capsys, "--input", str(scan_file), "-o", str(tmp_path))
    _assert_one_line_error(code, err, tmp_path, "pdf", "pango is gone", "nothing was written")


def test_a_failing_write_leaves_no_partial_files(
    tmp_path: Path,
    scan_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def flaky(self: Path, target: Path) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "replace", flaky)
    code, _o, err = _run(capsys, "--input", str(scan_file), "-o", str(tmp_path), "-f", "html,md")
    monkeypatch.undo()
    _assert_one_line_error(code, err, tmp_path, "No space left")


def test_scan_id_cannot_escape_the_output_folder(
    tmp_path: Path, scan: ScanResult, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "scan.json"
    path.write_text(replace(scan, scan_id="../../etc/evil").to_json(), encoding="utf-8")
    out = tmp_path / "out"
    code, _o, _e = _run(capsys, "--input", str(path), "-o", str(out), "-f", "md")
    assert code == 0
    assert [p.name for p in out.iterdir()] == ["parcelguard-report-etc_evil.md"]


def _store_with_history(tmp_path: Path) -> tuple[Path, list[ScanResult]]:
    db = tmp_path / "scans.db"
    store = ScanStore(db)
    first = synthetic_scan(hosts=3, scan_id="s1")
    second = replace(
        synthetic_scan(hosts=4, scan_id="s2", started=first.started + timedelta(days=1)),
    )
    store.save(first)
    store.save(second)
    return db, [first, second]


def test_latest_stored_scan_with_drift_and_trend(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, (first, second) = _store_with_history(tmp_path)
    code, _o, err = _run(capsys, "--store", str(db), "-o", str(tmp_path), "-f", "json")
    assert code == 0, err
    data = json.loads((tmp_path / "parcelguard-report-s2.json").read_text())
    assert data["scan"]["scan_id"] == "s2"
    assert data["drift"]["previous_scan_id"] == "s1"
    assert data["drift"]["hosts_added"] == [second.hosts[3].host]
    assert [p["scan_id"] for p in data["trend"]] == ["s1", "s2"]


def test_stored_scan_by_id_compared_with_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, (first, _second) = _store_with_history(tmp_path)
    previous = tmp_path / "prev.json"
    broken = replace(
        first,
        scan_id="p0",
        hosts=tuple(
            replace(h, results=tuple(replace(r, status=Status.FAIL) for r in h.results))
            for h in first.hosts
        ),
    )
    previous.write_text(broken.to_json(), encoding="utf-8")
    code, _o, err = _run(
        capsys,
        "--store",
        str(db),
        "--scan",
        "s1",
        "--compare",
        str(previous),
        "-o",
        str(tmp_path),
        "-f",
        "json",
        "--trend",
        "1",
    )
    assert code == 0, err
    data = json.loads((tmp_path / "parcelguard-report-s1.json").read_text())
    assert data["drift"]["previous_scan_id"] == "p0"
    assert len(data["drift"]["fixed"]) == sum(
        r.status is Status.PASS for h in first.hosts for r in h.results
    )
    assert len(data["trend"]) == 1


def test_no_compare(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db, _scans = _store_with_history(tmp_path)
    code, _o, _e = _run(
        capsys, "--store", str(db), "--no-compare", "-o", str(tmp_path), "-f", "json"
    )
    assert code == 0
    assert json.loads((tmp_path / "parcelguard-report-s2.json").read_text())["drift"] is None


def test_unknown_stored_scan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db, _scans = _store_with_history(tmp_path)
    code, _o, err = _run(capsys, "--store", str(db), "--scan", "nope", "-o", str(tmp_path))
    _assert_one_line_error(code, err, tmp_path, "no scan 'nope'")


def test_no_store_and_no_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _o, err = _run(capsys, "-o", str(tmp_path))
    _assert_one_line_error(code, err, tmp_path, "no scan store", "--input")


def test_bad_attestations(
    tmp_path: Path, scan_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    att = tmp_path / "att.yml"
    att.write_text("- {article: 99}\n", encoding="utf-8")
    code, _o, err = _run(
        capsys, "--input", str(scan_file), "-o", str(tmp_path), "--attestations", str(att)
    )
    _assert_one_line_error(code, err, tmp_path, "attestations:", "att.yml")


def test_help_describes_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["report", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for option in (
        "--input",
        "--scan",
        "--store",
        "--format",
        "--output",
        "--lang",
        "--attestations",
        "--compare",
        "--no-compare",
        "--trend",
        "zh-CN",
        "junit",
    ):
        assert option in text
