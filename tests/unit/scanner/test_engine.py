"""The engine turns exceptions into ERROR results and masks everything it reports."""

from __future__ import annotations

from parcelguard.scanners.catalog import Catalog, Control, ControlMeta, load_catalog
from parcelguard.scanners.context import HostContext
from parcelguard.scanners.engine import evaluate_control, evaluate_host, unreachable_results
from parcelguard.scanners.facts import HostFacts
from parcelguard.scanners.model import Evidence, Outcome, Severity, Status

from .gather import ctx_for, facts_for

META = ControlMeta(
    id="PG-PRIV-099",
    title="t",
    area="PRIV",
    articles=(34,),
    severity=Severity.LOW,
    rationale="r",
    evidence="e",
    remediation_role="least_privilege",
    remediation_tag="pg-priv-099",
)


def _boom(facts: HostFacts, ctx: HostContext) -> Outcome:
    raise KeyError("shadow")


def _wrong_type(facts: HostFacts, ctx: HostContext) -> Outcome:
    return "PASS"  # type: ignore[return-value]


def _claims_waived(facts: HostFacts, ctx: HostContext) -> Outcome:
    return Outcome(Status.WAIVED, "I waive myself")


def _leaky(facts: HostFacts, ctx: HostContext) -> Outcome:
    return Outcome.failed(
        "user 13812345678 has password=hunter2",
        Evidence("id 44030519900307123X", "hash $6$salt$abcdefghijkl"),
    )


def test_exception_in_a_check_becomes_error_with_type_and_message() -> None:
    r = evaluate_control(Control(META, _boom), facts_for(), ctx_for())
    assert r.status == Status.ERROR
    assert r.reason == "KeyError: 'shadow'"
    assert r.control_id == "PG-PRIV-099" and r.host == "data1" and r.articles == (34,)


def test_a_check_cannot_return_garbage_or_waive_itself() -> None:
    assert (
        evaluate_control(Control(META, _wrong_type), facts_for(), ctx_for()).status == Status.ERROR
    )
    r = evaluate_control(Control(META, _claims_waived), facts_for(), ctx_for())
    assert r.status == Status.ERROR and "WAIVED" in r.reason


def test_engine_masks_summary_and_evidence() -> None:
    r = evaluate_control(Control(META, _leaky), facts_for(), ctx_for())
    text = r.summary + " ".join(e.label + e.value for e in r.evidence)
    for secret in ("13812345678", "hunter2", "19900307", "abcdefghijkl"):
        assert secret not in text


def test_evaluate_host_keeps_catalog_order_and_survives_a_broken_control() -> None:
    catalog = load_catalog()
    broken = Catalog((Control(META, _boom), *catalog.controls))
    results = evaluate_host(broken, facts_for(), ctx_for())
    assert [r.control_id for r in results] == list(broken.ids)
    assert results[0].status == Status.ERROR
    assert results[1].status == Status.PASS


def test_unreachable_host_gets_an_error_for_every_control() -> None:
    catalog = load_catalog()
    results = unreachable_results(
        catalog, "web7", "ssh: connect to host 198.18.20.7 port 22: timed out"
    )
    assert len(results) == len(catalog.controls)
    assert all(r.status == Status.ERROR and r.host == "web7" for r in results)
    assert all("timed out" in r.reason for r in results)
