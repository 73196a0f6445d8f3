"""Evaluation of the catalog against one host's facts.

:func:`evaluate_control` is the one place where an exception raised inside a check
becomes a result: ERROR, with the exception's type and message as the reason. A check
can never crash a scan, and a check that fails never passes. Every summary, reason and
evidence value is masked here once more, so no control can leak personal data or
secrets into a report by forgetting to.
"""

from __future__ import annotations

from parcelguard.scanners.catalog import Catalog, Control
from parcelguard.scanners.context import HostContext
from parcelguard.scanners.facts import FactUnavailable, HostFacts
from parcelguard.scanners.masking import mask
from parcelguard.scanners.model import ControlResult, Evidence, Outcome, Status

# What a check may conclude; MANUAL and WAIVED are decided outside checks.
_CHECK_STATUSES = frozenset({Status.PASS, Status.FAIL, Status.ERROR, Status.NOT_APPLICABLE})


def _result(ctl: Control, host: str, outcome: Outcome) -> ControlResult:
    return ControlResult(
        control_id=ctl.id,
        host=host,
        status=outcome.status,
        summary=mask(outcome.summary),
        severity=ctl.meta.severity,
        articles=ctl.meta.articles,
        evidence=tuple(Evidence(mask(e.label), mask(e.value)) for e in outcome.evidence),
        reason=mask(outcome.reason),
    )


def evaluate_control(ctl: Control, facts: HostFacts, ctx: HostContext) -> ControlResult:
    """Run one control's check; any exception becomes an ERROR result."""
    try:
        outcome = ctl.check(facts, ctx)
    except FactUnavailable as exc:
        outcome = Outcome.error(str(exc))
    except Exception as exc:  # the boundary: a broken check must not stop the scan
        outcome = Outcome.error(f"{type(exc).__name__}: {exc}")
    if not isinstance(outcome, Outcome):
        outcome = Outcome.error(f"check returned {type(outcome).__name__}, not an Outcome")
    elif outcome.status not in _CHECK_STATUSES:
        outcome = Outcome.error(f"check returned status {outcome.status.value}")
    return _result(ctl, ctx.host, outcome)


def evaluate_host(
    catalog: Catalog, facts: HostFacts, ctx: HostContext
) -> tuple[ControlResult, ...]:
    """Every control of ``catalog`` judged on ``facts``, in catalog order."""
    return tuple(evaluate_control(ctl, facts, ctx) for ctl in catalog.controls)


def unreachable_results(catalog: Catalog, host: str, reason: str) -> tuple[ControlResult, ...]:
    """Every control ERROR for a host that could not be scanned, with ``reason``."""
    outcome = Outcome.error(f"host not scanned: {reason}")
    return tuple(_result(ctl, host, outcome) for ctl in catalog.controls)
