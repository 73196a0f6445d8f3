"""Zone policy parsing and the reachability comparison."""

from __future__ import annotations

import copy

import pytest

from parcelguard.scanners.policy import (
    DEFAULT_POLICY,
    DEFAULT_ZONE_POLICY,
    DEFAULT_ZONES,
    PolicyError,
    compare_reachability,
    parse_zone_policy,
)


def test_default_policy_allows_only_the_declared_flows() -> None:
    p = DEFAULT_ZONE_POLICY
    assert p.allows(["mgmt"], ["data"], 22)
    assert p.allows(["dmz"], ["app"], 8080)
    assert p.allows(["app"], ["data"], 5432)
    assert not p.allows(["dmz"], ["data"], 5432)
    assert not p.allows(["app"], ["data"], 22)  # admin ports only from mgmt
    assert not p.allows(["data"], ["data"], 5432)  # nothing else, not even inside a zone
    assert not p.allows(["mgmt"], ["data"], 5432)


def _policy_with(**changes: object) -> dict[str, object]:
    policy = copy.deepcopy(DEFAULT_POLICY)
    policy.update(changes)
    return policy


@pytest.mark.parametrize(
    ("zones", "policy", "message"),
    [
        ({"mgmt": {"subnet": "198.18.10.1/24"}}, DEFAULT_POLICY, "has host bits set"),
        (
            {"a": {"subnet": "198.18.0.0/16"}, "b": {"subnet": "198.18.5.0/24"}},
            {"mgmt_zone": "a", "admin_ports": [22], "flows": []},
            "overlap",
        ),
        (DEFAULT_ZONES, _policy_with(mgmt_zone="ops"), "mgmt_zone: 'ops' is not a zone"),
        (DEFAULT_ZONES, _policy_with(admin_ports=[0]), "not a port number"),
        (DEFAULT_ZONES, _policy_with(admin_ports=[True]), "not a port number"),
        (
            DEFAULT_ZONES,
            _policy_with(flows=[{"from": "dmz", "to": "app", "ports": [22]}]),
            r"flows\[0\]: port\(s\) \[22\] are admin ports",
        ),
        (
            DEFAULT_ZONES,
            _policy_with(flows=[{"from": "dmz", "to": "app", "port": [80]}]),
            "unknown key",
        ),
        (
            DEFAULT_ZONES,
            _policy_with(partner_access=[{"partner": "sf", "to": "data", "ports": [5432]}]),
            "'sf' is not declared under partners",
        ),
        (DEFAULT_ZONES, _policy_with(partners={"sf": ["not-a-cidr"]}), "partners.sf"),
    ],
)
def test_malformed_policies_are_refused(zones: object, policy: object, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        parse_zone_policy(zones, policy)


def test_compare_reachability_reports_violations_and_unknowns() -> None:
    hosts = {"m": ("mgmt",), "w": ("dmz",), "d": ("data",)}
    measured: dict[tuple[str, str, int], bool | None] = {
        ("m", "d", 22): True,
        ("w", "d", 5432): True,
        ("w", "d", 22): None,
        ("x", "d", 22): True,
        ("m", "w", 22): False,
    }
    findings = compare_reachability(DEFAULT_ZONE_POLICY, hosts, measured)
    kinds = {(f.src, f.dst, f.port): f.kind for f in findings}
    assert kinds == {
        ("w", "d", 5432): "open-denied",
        ("w", "d", 22): "unknown",
        ("x", "d", 22): "unknown",
        ("m", "w", 22): "blocked-allowed",
    }


def test_allowed_sources_include_partners_for_their_ports_only() -> None:
    policy = parse_zone_policy(
        DEFAULT_ZONES,
        _policy_with(
            partners={"sf": ["203.0.113.0/28"]},
            partner_access=[{"partner": "sf", "to": "data", "ports": [5432]}],
        ),
    )
    nets = {str(n) for n in policy.allowed_sources(["data"], 5432)}
    assert nets == {"198.18.30.0/24", "203.0.113.0/28"}
    assert {str(n) for n in policy.allowed_sources(["data"], 22)} == {"198.18.10.0/24"}
    assert policy.allowed_sources(["data"], 6379) == ()
