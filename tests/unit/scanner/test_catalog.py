"""The catalog loader refuses inconsistent metadata and covers every technical article."""

from __future__ import annotations

from dataclasses import replace

import pytest

from parcelguard.scanners.catalog import (
    MANUAL_ARTICLES,
    TECHNICAL_ARTICLES,
    CatalogError,
    Control,
    ControlMeta,
    load_catalog,
    validate_catalog,
)
from parcelguard.scanners.context import HostContext
from parcelguard.scanners.facts import HostFacts
from parcelguard.scanners.model import Outcome, Severity


def _check(facts: HostFacts, ctx: HostContext) -> Outcome:
    return Outcome.passed("ok")


GOOD = ControlMeta(
    id="PG-SSH-001",
    title="SSH refuses password logins",
    area="SSH",
    articles=(29, 30, 31, 33, 34, 35, 36, 37, 38, 39),
    severity=Severity.HIGH,
    rationale="why",
    evidence="what",
    remediation_role="encrypted_transport",
    remediation_tag="pg-ssh-001",
)


def test_a_complete_control_is_accepted() -> None:
    catalog = validate_catalog([("SSH", [Control(GOOD, _check)])])
    assert catalog.ids == ("PG-SSH-001",)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id": "PG-SSH-1"}, "id must match"),
        ({"id": "SSH-001"}, "id must match"),
        ({"id": "PG-TLS-001", "remediation_tag": "pg-tls-001"}, "module's area 'SSH'"),
        ({"area": "TLS"}, "module's area 'SSH'"),
        ({"title": "  "}, "title is empty"),
        ({"rationale": ""}, "rationale is empty"),
        ({"evidence": ""}, "evidence is empty"),
        ({"articles": ()}, "names no article"),
        ({"articles": (31, 17)}, "not technical articles"),
        ({"remediation_role": "hardening"}, "unknown remediation role"),
        ({"remediation_tag": "ssh"}, "remediation tag must be 'pg-ssh-001'"),
        ({"severity": "high"}, "severity must be a Severity"),
    ],
)
def test_incomplete_or_inconsistent_metadata_is_refused(
    change: dict[str, object], message: str
) -> None:
    bad = Control(replace(GOOD, **change), _check)  # type: ignore[arg-type]
    with pytest.raises(CatalogError, match=message) as info:
        validate_catalog([("SSH", [bad])])
    assert str(info.value).startswith(bad.meta.id or "<control")


def test_duplicate_ids_are_refused() -> None:
    with pytest.raises(CatalogError, match="PG-SSH-001: duplicate"):
        validate_catalog([("SSH", [Control(GOOD, _check), Control(GOOD, _check)])])


def test_uncovered_technical_article_is_refused() -> None:
    partial = replace(GOOD, articles=(31,))
    with pytest.raises(CatalogError, match=r"article\(s\) \[29, 30, 33"):
        validate_catalog([("SSH", [Control(partial, _check)])])


def test_module_without_controls_tuple_is_refused() -> None:
    with pytest.raises(CatalogError, match="must define AREA"):
        load_catalog(("parcelguard.scanners.masking",))


def test_shipped_catalog_covers_every_technical_article() -> None:
    catalog = load_catalog()
    for article in TECHNICAL_ARTICLES:
        assert catalog.for_article(article), f"article {article} has no control"
    assert len(set(catalog.ids)) == len(catalog.ids)
    assert all(c.meta.remediation_tag == c.id.lower() for c in catalog.controls)


def test_manual_articles_are_the_attestation_articles() -> None:
    assert set(MANUAL_ARTICLES) == set(range(8, 28)) | {32}
    assert not set(MANUAL_ARTICLES) & set(TECHNICAL_ARTICLES)
    assert all(title.strip() for title in MANUAL_ARTICLES.values())
