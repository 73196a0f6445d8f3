"""Scan a fleet: gather facts per host, measure zone reachability, judge every control.

Three phases, each bounded: (1) on every host at once (``parallel`` at a time) one
connection and one round trip gather all facts; (2) from one host per zone one more round
trip probes the other zones; (3) controls are judged from the facts (pure, no I/O). A host
that does not answer in time becomes ERROR for each control and the scan goes on. Ctrl-C
stops the scan and returns what had finished, marked incomplete.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from parcelguard import __version__
from parcelguard.scanners import engine, facts, probe
from parcelguard.scanners.catalog import Catalog
from parcelguard.scanners.connection import ConnectionFailed, HostSession, open_session
from parcelguard.scanners.context import HostContext, ScanSettings
from parcelguard.scanners.credcache import CredentialCache
from parcelguard.scanners.model import HostResult, ScanResult
from parcelguard.scanners.policy import Reachability
from parcelguard.scanners.targets import LOCAL, Fleet, Target
from parcelguard.scanners.waivers import Waiver, apply_waivers

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ScanOptions:
    parallel: int = 10
    connect_timeout: float = 10
    command_timeout: float = 120
    verify_host_keys: bool = True
    known_hosts: Path | None = None
    measure_zones: bool = True
    roster: frozenset[str] | None = None
    settings: ScanSettings = field(default_factory=ScanSettings)
    waivers: tuple[Waiver, ...] = ()
    credential_cache: Path | None = None  # None: check every hash on every scan


@dataclass(frozen=True)
class _Gathered:
    target: Target
    started: datetime
    finished: datetime
    facts: facts.HostFacts | None
    error: str = ""
    stopped: bool = False  # not scanned because the scan was stopped: left out of the result


def _cache_id(target: Target) -> str:
    # Two inventories may both have a "web1"; the address tells them apart.
    return f"{target.name}@{target.address}"


def new_scan_id(now: datetime) -> str:
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


class FleetScan:
    """One scan of one fleet; ``run()`` returns the result (incomplete after Ctrl-C)."""

    def __init__(
        self,
        fleet: Fleet,
        catalog: Catalog,
        options: ScanOptions,
        progress: Progress = lambda _m: None,
    ) -> None:
        self.fleet = fleet
        self.catalog = catalog
        self.options = options
        self.progress = progress
        self.sessions: dict[str, HostSession] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._measure_notes: list[str] = []
        self.cred_cache = (
            CredentialCache(options.credential_cache, facts.DEFAULT_PASSWORDS)
            if options.credential_cache is not None
            else None
        )
        self.interrupted = False

    def run(self) -> ScanResult:
        started = datetime.now(UTC)
        gathered: dict[str, _Gathered] = {}
        measured: dict[tuple[str, str, int], bool | None] = {}
        notes: list[str] = []
        try:
            self._gather_all(gathered)
            if self._should_measure():
                measured = self._measure(gathered)
        except KeyboardInterrupt:
            self.interrupted = True
            notes.append("scan interrupted: hosts not finished are not in this result")
        finally:
            self._stop()
        notes.extend(self._measure_notes)
        if self.options.measure_zones and not self._should_measure():
            if any(t.connection == LOCAL for t in self.fleet.targets):
                notes.append("zone reachability not measured: a local scan has no zones")
            else:
                notes.append("zone reachability not measured: fewer than two zones in the scan")
        hosts = tuple(
            self._judge(gathered[t.name], measured)
            for t in self.fleet.targets
            if t.name in gathered
        )
        if self.cred_cache is not None:
            try:
                self.cred_cache.save()
            except OSError as exc:
                notes.append(f"credential-check cache not saved: {exc.strerror or exc}")
        hosts, problems = self._waive(hosts)
        notes.extend(problems)
        return ScanResult(
            scan_id=new_scan_id(started),
            started=started,
            finished=datetime.now(UTC),
            tool_version=__version__,
            inventory=self.fleet.source,
            hosts=hosts,
            complete=not self.interrupted,
            notes=tuple(notes),
        )

    # -- phase 1 -----------------------------------------------------------------------

    def _session(self, target: Target) -> HostSession:
        with self._lock:
            if self._stopping.is_set():
                raise ConnectionFailed("the scan was stopped")
            if target.name not in self.sessions:
                self.sessions[target.name] = open_session(
                    target,
                    known_hosts=self.options.known_hosts,
                    verify_host_keys=self.options.verify_host_keys,
                    connect_timeout=self.options.connect_timeout,
                    command_timeout=self.options.command_timeout,
                )
            return self.sessions[target.name]

    def _gather_one(self, target: Target) -> _Gathered:
        started = datetime.now(UTC)
        cache = self.cred_cache
        params = facts.GatherParams(
            marker=facts.new_marker(),
            data_paths=self.options.settings.data_paths,
            cred_key=cache.key if cache else "",
            cred_known=cache.known(_cache_id(target)) if cache else (),
        )
        try:
            result = self._session(target).run("bash -c %s", facts.gather_script(params))
        except ConnectionFailed as exc:
            stopped = self._stopping.is_set()
            return _Gathered(target, started, datetime.now(UTC), None, str(exc), stopped)
        host_facts = facts.parse_gather_output(result.stdout, params.marker)
        if not host_facts.sections:
            detail = result.stderr.strip().splitlines()[-1:] or [f"exit code {result.rc}"]
            return _Gathered(
                target, started, datetime.now(UTC), None, f"fact gathering failed: {detail[0]}"
            )
        if cache is not None:
            cache.update(_cache_id(target), facts.cached_matches(host_facts))
        return _Gathered(target, started, datetime.now(UTC), host_facts)

    def _gather_all(self, gathered: dict[str, _Gathered]) -> None:
        targets = list(self.fleet.targets)
        total = len(targets)
        pool = ThreadPoolExecutor(max_workers=max(1, min(self.options.parallel, total)))
        pending: set[Future[_Gathered]] = {pool.submit(self._gather_one, t) for t in targets}
        futures = set(pending)

        def record(fut: Future[_Gathered]) -> None:
            g = fut.result()
            if g.target.name in gathered or g.stopped:
                return
            gathered[g.target.name] = g
            took = (g.finished - g.started).total_seconds()
            state = f"unreachable: {g.error}" if g.facts is None else "facts gathered"
            self.progress(f"[{len(gathered)}/{total}] {g.target.name}: {state} ({took:.1f} s)")

        try:
            while pending:
                done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for fut in done:
                    record(fut)
        except KeyboardInterrupt:
            self.interrupted = True
            # Keep every host that had finished, then stop the rest: closing connections
            # makes threads blocked in SSH reads or handshakes return at once.
            for fut in futures:
                if fut.done() and not fut.cancelled() and fut.exception() is None:
                    record(fut)
            self._stop()
            raise
        finally:
            pool.shutdown(wait=not self.interrupted, cancel_futures=True)

    # -- phase 2 -----------------------------------------------------------------------

    def _should_measure(self) -> bool:
        zones = {z for t in self.fleet.targets for z in t.zones}
        local = any(t.connection == LOCAL for t in self.fleet.targets)
        return self.options.measure_zones and len(zones) > 1 and not local

    def _measure(
        self, gathered: Mapping[str, _Gathered]
    ) -> dict[tuple[str, str, int], bool | None]:
        reachable = {n: g for n, g in gathered.items() if g.facts is not None}
        all_hosts = {t.name: t.zones for t in self.fleet.targets if t.zones}
        addresses = {t.name: t.address for t in self.fleet.targets}
        # The probe connects to explicit addresses only; a host named by DNS is not probed.
        named = sorted(h for h in all_hosts if not probe.is_address(addresses[h]))
        for h in named:
            self._measure_notes.append(
                f"zone probe skipped for {h}: ansible_host {addresses[h]!r} is not an IP address"
            )
        hosts = {h: z for h, z in all_hosts.items() if h not in named}
        ports = probe.declared_ports(self.fleet.policy)
        work = probe.plan({h: z for h, z in hosts.items() if h in reachable}, addresses, ports)
        # Hosts that could not be scanned are still probed as destinations (by address).
        for src, targets in list(work.items()):
            missing = [
                probe.ProbeTarget(dst, addresses[dst], port)
                for dst in sorted(set(hosts) - set(reachable))
                if not set(hosts[src]) & set(hosts[dst])
                for port in ports
            ]
            work[src] = targets + missing
        self.progress(
            f"measuring zone reachability from {len(work)} hosts "
            f"({sum(len(t) for t in work.values())} probes)"
        )
        measured: dict[tuple[str, str, int], bool | None] = {
            (src, dst, port): None
            for src in work
            for dst in named
            if not set(all_hosts[src]) & set(all_hosts[dst])
            for port in ports
        }

        def one(src: str) -> dict[tuple[str, str, int], bool | None]:
            targets = work[src]
            try:
                out = self._session(reachable[src].target).run(
                    "bash -c %s", probe.probe_script(targets)
                )
            except ConnectionFailed:
                return {(src, t.host, t.port): None for t in targets}
            return probe.parse_probe_output(src, targets, out.stdout)

        with ThreadPoolExecutor(max_workers=max(1, min(self.options.parallel, len(work)))) as pool:
            for part in pool.map(one, sorted(work)):
                measured.update(part)
        return measured

    # -- phase 3 -----------------------------------------------------------------------

    def _judge(
        self, g: _Gathered, measured: Mapping[tuple[str, str, int], bool | None]
    ) -> HostResult:
        t = g.target
        if g.facts is None:
            results = engine.unreachable_results(self.catalog, t.name, g.error)
            return HostResult(
                t.name, t.address, t.zones, g.started, g.finished, False, g.error, results
            )
        reach = None
        if measured:
            reach = Reachability(
                hosts={x.name: x.zones for x in self.fleet.targets if x.zones}, measured=measured
            )
        ctx = HostContext(
            host=t.name,
            address=t.address,
            now=g.finished,
            zones=t.zones,
            groups=t.groups,
            policy=self.fleet.policy,
            roster=self.options.roster,
            settings=self.options.settings,
            reachability=reach,
        )
        results = engine.evaluate_host(self.catalog, g.facts, ctx)
        return HostResult(t.name, t.address, t.zones, g.started, g.finished, True, "", results)

    def _waive(self, hosts: tuple[HostResult, ...]) -> tuple[tuple[HostResult, ...], list[str]]:
        if not self.options.waivers:
            return hosts, []
        today = datetime.now(UTC).date()
        problems: set[str] = set()
        out = []
        for h in hosts:
            outcome = apply_waivers(h.results, self.options.waivers, today, self.catalog.ids)
            problems.update(outcome.problems)
            out.append(
                HostResult(
                    h.host,
                    h.address,
                    h.zones,
                    h.started,
                    h.finished,
                    h.reachable,
                    h.error,
                    outcome.results,
                )
            )
        return tuple(out), sorted(problems)

    def _stop(self) -> None:
        """No new connection from now on; close (or abort) every open one."""
        with self._lock:
            self._stopping.set()
        self._close_all()

    def _close_all(self) -> None:
        for s in list(self.sessions.values()):
            try:
                s.close()
            except Exception:  # noqa: S112 - closing is best effort; the result is what counts
                continue


def results_by_status(scan: ScanResult) -> dict[str, int]:
    counts: dict[str, int] = {}
    for h in scan.hosts:
        for r in h.results:
            counts[r.status.value] = counts.get(r.status.value, 0) + 1
    return counts
