"""The gather script's safety and format, and parsing of hostile host output."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from parcelguard.scanners import facts as facts_mod
from parcelguard.scanners.catalog import load_catalog
from parcelguard.scanners.engine import evaluate_host
from parcelguard.scanners.facts import (
    SECTION_NAMES,
    FactUnavailable,
    GatherParams,
    gather_script,
    need,
    new_marker,
    parse_gather_output,
)
from parcelguard.scanners.hostdata import shadow
from parcelguard.scanners.model import Status

from .gather import MARKER, Sec, ctx_for, load_profile, render

HOSTILE_PATH = "/srv/x'; touch /tmp/pwned-$(id -u) #"


def _bash(script: str) -> str:
    return subprocess.run(
        ["bash", "-s"], input=script, capture_output=True, text=True, timeout=60, check=False
    ).stdout


def test_params_are_validated() -> None:
    with pytest.raises(ValueError, match="marker"):
        GatherParams(marker="short")
    with pytest.raises(ValueError, match="absolute"):
        GatherParams(marker=new_marker(), data_paths=("relative/path",))
    with pytest.raises(ValueError, match="one line"):
        GatherParams(marker=new_marker(), default_passwords=("a\nb",))
    with pytest.raises(ValueError, match="positive"):
        GatherParams(marker=new_marker(), command_timeout=0)


def test_every_parameter_enters_the_script_quoted() -> None:
    params = GatherParams(
        marker=new_marker(), data_paths=(HOSTILE_PATH,), default_passwords=("pa ss'$(x)",)
    )
    script = gather_script(params)
    assert shlex.quote(HOSTILE_PATH) in script
    assert shlex.quote("pa ss'$(x)") in script
    assert script.count(params.marker) == 1  # only the quoted assignment
    assert "pa ss'$(x)" not in script.replace(shlex.quote("pa ss'$(x)"), "")


def test_full_script_is_valid_bash_and_names_every_section() -> None:
    script = gather_script(GatherParams(marker=new_marker()))
    result = subprocess.run(
        ["bash", "-n"], input=script, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    for name in SECTION_NAMES:
        assert f"emit {name} " in script
    for risky in ("cat /etc/shadow", "ssh_host_", "PRIVATE KEY"):
        assert risky not in script


def test_unknown_section_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown gather section"):
        gather_script(GatherParams(marker=new_marker()), ["os-release", "everything"])


def test_local_run_of_harmless_sections_round_trips(tmp_path: Path) -> None:
    data = tmp_path / "waybill"
    (data / "exports").mkdir(parents=True)
    (data / "exports" / "open.csv").write_text("x")
    (data / "exports" / "open.csv").chmod(0o644)
    (data / "exports").chmod(0o750)
    data.chmod(0o750)
    params = GatherParams(marker=new_marker(), data_paths=(str(data), HOSTILE_PATH))
    out = _bash(gather_script(params, ["os-release", "data-paths", "linger"]))
    parsed = parse_gather_output(out, params.marker)
    assert parsed.finished and not parsed.problems
    assert [s.name for s in parsed.sections] == ["os-release", "data-paths", "linger"]
    assert "ID=" in need(parsed, "os-release").stdout
    rows = need(parsed, "data-paths").stdout
    assert "open\t644 " in rows and "open.csv" in rows
    assert f"missing\t{HOSTILE_PATH}" in rows
    assert not list(Path("/tmp").glob("pwned-*"))


def test_section_output_is_capped() -> None:
    params = GatherParams(marker=new_marker(), section_max_bytes=40)
    parsed = parse_gather_output(_bash(gather_script(params, ["os-release"])), params.marker)
    sec = parsed.section("os-release")
    assert sec is not None and sec.truncated and len(sec.stdout) <= 41
    with pytest.raises(FactUnavailable, match="size cap"):
        need(parsed, "os-release")


def test_fixture_renderer_matches_the_script_format() -> None:
    params = GatherParams(marker=MARKER)
    real = parse_gather_output(_bash(gather_script(params, ["os-release"])), MARKER)
    sec = real.section("os-release")
    assert sec is not None
    fake = parse_gather_output(render({"os-release": Sec(sec.stdout, sec.rc, sec.stderr)}), MARKER)
    assert fake.section("os-release") == sec


def test_shadow_analysis_reports_schemes_and_matches_but_never_hashes(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # deprecated module, used only to make test hashes

        support = crypt.crypt("support", "$y$j9T$abcdefghijklmnop$")
        strong = crypt.crypt("Wq8!zN4#long-and-random", crypt.mksalt(crypt.METHOD_SHA512))
        default = crypt.crypt("888888", crypt.mksalt(crypt.METHOD_SHA512))
    assert support and strong and default
    shadow_file = tmp_path / "shadow"
    shadow_file.write_text(
        "root:*:20000:0:99999:7:::\n"
        f"support:{support}:20000:0:99999:7:::\n"
        f"wangfang:{strong}:20760:1:90:7:::\n"
        f"lihua:!{default}:20726:1:90:7::20726:\n"
        "test::20600:0:99999:7:::\n"
        "broken-line\n"
    )
    candidates = "".join(f"cand\t{c}\n" for c in facts_mod.DEFAULT_PASSWORDS)
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", facts_mod._SHADOW_PY, str(shadow_file)],
        input=candidates,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "LC_ALL": "C"},
    )
    for secret in (support, strong, default):
        assert secret.split("$")[-1] not in result.stdout
    parsed = parse_gather_output(render({"shadow": Sec(result.stdout)}), MARKER)
    entries = shadow(parsed)
    assert entries["support"].scheme == "$y$" and entries["support"].match == "u"
    assert entries["wangfang"].scheme == "$6$" and entries["wangfang"].match == "-"
    assert entries["lihua"].state == "locked"
    assert entries["lihua"].match == str(facts_mod.DEFAULT_PASSWORDS.index("888888"))
    assert entries["lihua"].expire_day == 20726
    assert entries["test"].state == "empty"
    assert entries["root"].state == "disabled"


HOSTILE_OUTPUTS = [
    "",
    "garbage\x00\xff\n" * 1000,
    "Permission denied (publickey).\r\n",
    f"{MARKER} BEGIN passwd notanumber 0\nroot:x:0:0::/root:/bin/bash\n",  # never ends
    f"{MARKER} BEGIN\n{MARKER} END\n{MARKER} STDERR x y z w\n",
    "ffffffffffffffffffffffffffffffff BEGIN passwd 0 0\nroot:x:0:0::/:/bin/sh\n",
    f"{MARKER} BEGIN nft 0 0\n" + "[" * 100_000 + f"\n{MARKER} STDERR nft\n\n{MARKER} END nft\n",
    "x" * (facts_mod.MAX_OUTPUT_CHARS + 10),
]


@pytest.mark.parametrize("text", HOSTILE_OUTPUTS, ids=range(len(HOSTILE_OUTPUTS)))
def test_hostile_output_never_raises_and_yields_only_errors(text: str) -> None:
    parsed = parse_gather_output(text, MARKER)
    assert parsed.problems
    results = evaluate_host(load_catalog(), parsed, ctx_for(reachability=False))
    bad = [r for r in results if r.status not in (Status.ERROR, Status.NOT_APPLICABLE)]
    assert not bad, [(r.control_id, r.status, r.summary) for r in bad]
    assert any(r.status == Status.ERROR for r in results)


def test_parser_survives_non_text_input() -> None:
    parsed = parse_gather_output(b"bytes", MARKER)  # type: ignore[arg-type]
    assert parsed.problems and not parsed.sections


def test_forged_section_boundaries_inside_output_are_plain_text() -> None:
    sections = load_profile("hardened")
    forged = "evil\t/x\n" + "0000 BEGIN passwd 0 0\nmallory:x:0:0::/:/bin/sh\n"
    sections["crontabs"] = Sec("==> lihua <==\n" + forged)
    parsed = parse_gather_output(render(sections), MARKER)
    assert "mallory" not in need(parsed, "passwd").stdout


def test_duplicate_and_cut_off_sections() -> None:
    text = render({"passwd": Sec("root:x:0:0::/root:/bin/bash\n")}, done=False)
    text += render({"passwd": Sec("mallory:x:0:0::/:/bin/sh\n"), "group": Sec("x", cut=True)})
    parsed = parse_gather_output(text, MARKER)
    assert "root" in need(parsed, "passwd").stdout
    assert any("duplicate" in p for p in parsed.problems)
    with pytest.raises(FactUnavailable, match="cut off"):
        need(parsed, "group")


def test_stdout_is_reproduced_exactly() -> None:
    for out in ("", "a", "a\n", "a\n\n", "\n", "x\r\ny"):
        parsed = parse_gather_output(render({"os-release": Sec(out)}), MARKER)
        sec = parsed.section("os-release")
        assert sec is not None and sec.stdout == out


def _run_shadow_py(shadow_file: Path, stdin: str) -> str:
    return subprocess.run(
        [sys.executable, "-W", "ignore", "-c", facts_mod._SHADOW_PY, str(shadow_file)],
        input=stdin,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "LC_ALL": "C"},
    ).stdout


def test_credential_cache_skips_unchanged_hashes_and_reports_digests(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt

        support = crypt.crypt("support", crypt.mksalt(crypt.METHOD_SHA512))
    shadow_file = tmp_path / "shadow"
    shadow_file.write_text(f"root:*:20000:0:99999:7:::\nsupport:{support}:20000:0:99999:7:::\n")
    key = "ab" * 32
    cands = "".join(f"cand\t{c}\n" for c in facts_mod.DEFAULT_PASSWORDS)
    first = _run_shadow_py(shadow_file, f"key\t{key}\n{cands}")
    (cache_line,) = [ln for ln in first.splitlines() if ln.startswith("cache\t")]
    _, digest, match = cache_line.split("\t")
    assert match == "u"  # its own name
    assert support.split("$")[-1] not in first
    # Known digest: the host takes the given verdict instead of hashing again. A verdict
    # the candidates could not produce proves no hashing happened.
    second = _run_shadow_py(shadow_file, f"key\t{key}\nknown\t{digest}\t-\n{cands}")
    row = next(ln for ln in second.splitlines() if ln.startswith("support\t"))
    assert row.split("\t")[-1] == "-"
    # Another key (a new candidate list or cache) gives another digest: checked afresh.
    third = _run_shadow_py(shadow_file, f"key\t{'cd' * 32}\nknown\t{digest}\t-\n{cands}")
    row = next(ln for ln in third.splitlines() if ln.startswith("support\t"))
    assert row.split("\t")[-1] == "u"
