"""Host access through pytest-testinfra's backends, with SSH host keys verified.

testinfra's own paramiko backend accepts unknown host keys with a warning and never reads
known_hosts; an audit tool must not. ``VerifiedParamikoBackend`` keeps testinfra's command
handling (quoting, sudo) and replaces only how the connection is made: host keys from the
given known_hosts file, unknown or changed keys refused, one connection per host reused for
every command, and a bound on every command's time.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
import threading
from pathlib import Path
from typing import Any

import paramiko
from testinfra.backend.base import CommandResult
from testinfra.backend.local import LocalBackend
from testinfra.backend.paramiko import ParamikoBackend
from testinfra.host import Host

from parcelguard.scanners.targets import LOCAL, Target

DEFAULT_KNOWN_HOSTS = Path("~/.ssh/known_hosts").expanduser()


class ConnectionFailed(Exception):
    """The host could not be reached or refused us; the message says which and why."""


def _sudo_non_interactive(backend: Any, command: str, sudo_user: str | None) -> str:
    # `sudo -n`: fail at once when a password would be asked, instead of hanging the scan.
    if sudo_user is None:
        return str(backend.quote("sudo -n /bin/sh -c %s", command))
    return str(backend.quote("sudo -n -u %s /bin/sh -c %s", sudo_user, command))


class _LocalBackend(LocalBackend):  # type: ignore[misc]
    def get_sudo_command(self, command: str, sudo_user: str | None) -> str:
        return _sudo_non_interactive(self, command, sudo_user)


class VerifiedParamikoBackend(ParamikoBackend):  # type: ignore[misc]
    NAME = "paramiko-verified"

    def get_sudo_command(self, command: str, sudo_user: str | None) -> str:
        return _sudo_non_interactive(self, command, sudo_user)

    def __init__(
        self,
        target: Target,
        *,
        known_hosts: Path | None,
        verify_host_keys: bool = True,
        connect_timeout: float = 10,
        command_timeout: float = 120,
    ) -> None:
        super().__init__(
            f"paramiko://{target.user}@{target.address}:{target.port}",
            ssh_identity_file=target.key_file,
            timeout=int(connect_timeout),
            sudo=target.needs_sudo,
        )
        self.target = target
        self.known_hosts = known_hosts
        self.verify_host_keys = verify_host_keys
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self._sock: socket.socket | None = None
        self._client: paramiko.SSHClient | None = None
        self._client_lock = threading.Lock()
        self._closed = False

    # Not functools.cached_property: before Python 3.12 it holds one lock for all
    # instances, which would make every host wait for the slowest host's handshake.
    @property
    def client(self) -> paramiko.SSHClient:
        with self._client_lock:
            if self._client is None:
                if self._closed:
                    raise ConnectionFailed("the scan was stopped")
                self._client = self._connect()
            return self._client

    @client.deleter
    def client(self) -> None:
        with self._client_lock:
            if self._client is not None:
                self._client.close()
            self._client = None

    def _connect(self) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        if self.verify_host_keys:
            if self.known_hosts is None or not self.known_hosts.exists():
                raise ConnectionFailed(
                    f"no known_hosts file to verify {self.target.address}'s host key "
                    f"({self.known_hosts or 'none given'})"
                )
            client.load_host_keys(str(self.known_hosts))
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
        else:
            # The user asked for it (--no-verify-host-keys) and is warned loudly.
            client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # noqa: S507
        try:
            # Our own socket, so that close() can abort a connection stuck in the handshake.
            self._sock = socket.create_connection(
                (self.target.address, self.target.port), timeout=self.connect_timeout
            )
            client.connect(
                self.target.address,
                sock=self._sock,
                port=self.target.port,
                username=self.target.user,
                key_filename=self.target.key_file,
                timeout=self.connect_timeout,
                banner_timeout=self.connect_timeout,
                auth_timeout=self.connect_timeout,
                allow_agent=self.target.key_file is None,
                look_for_keys=self.target.key_file is None,
            )
        except paramiko.BadHostKeyException as exc:
            raise ConnectionFailed(
                f"host key of {self.target.address} does not match known_hosts: possible "
                "man-in-the-middle, refusing to connect"
            ) from exc
        except paramiko.AuthenticationException as exc:
            raise ConnectionFailed(f"authentication as {self.target.user} failed") from exc
        except paramiko.SSHException as exc:
            if self._closed:
                raise ConnectionFailed("the scan was stopped") from exc
            if "banner" in str(exc) or "No existing session" in str(exc):
                raise ConnectionFailed(
                    f"the SSH server did not answer within {self.connect_timeout:.0f} s"
                ) from exc
            raise ConnectionFailed(f"SSH failed: {exc}") from exc
        except TimeoutError as exc:
            raise ConnectionFailed(f"no answer within {self.connect_timeout:.0f} s") from exc
        except OSError as exc:
            raise ConnectionFailed(f"cannot connect: {exc.strerror or exc}") from exc
        return client

    def _exec_command(self, command: bytes) -> tuple[int, bytes, bytes]:
        transport = self.client.get_transport()
        if transport is None or not transport.is_active():
            raise ConnectionFailed("the SSH connection was closed")
        chan = transport.open_session(timeout=self.connect_timeout)
        chan.settimeout(self.command_timeout)
        try:
            chan.exec_command(command)
            stdout = chan.makefile("rb").read()
            stderr = chan.makefile_stderr("rb").read()
            rc = chan.recv_exit_status()
        except TimeoutError as exc:
            raise ConnectionFailed(
                f"a command did not finish within {self.command_timeout:.0f} s"
            ) from exc
        finally:
            chan.close()
        return rc, stdout, stderr

    def close(self) -> None:
        """Close the connection; also aborts one that another thread is still opening."""
        self._closed = True
        if self._client is not None:
            self._client.close()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()


class HostSession:
    """One open host: run commands through testinfra, close the connection at the end."""

    def __init__(self, target: Target, backend: Any) -> None:
        self.target = target
        self.backend = backend
        self.host = Host(backend)

    def run(self, command: str, *args: str) -> CommandResult:
        """Run a command; every argument is shell-quoted by testinfra."""
        try:
            result: CommandResult = self.host.run(command, *args)
        except ConnectionFailed:
            raise
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise ConnectionFailed(f"{type(exc).__name__}: {exc}") from exc
        return result

    def close(self) -> None:
        closer = getattr(self.backend, "close", None)
        if callable(closer):
            closer()


def open_session(
    target: Target,
    *,
    known_hosts: Path | None = None,
    verify_host_keys: bool = True,
    connect_timeout: float = 10,
    command_timeout: float = 120,
) -> HostSession:
    """Open a session to target (connecting lazily on the first command)."""
    if target.connection == LOCAL:
        return HostSession(target, _LocalBackend("local://", sudo=target.needs_sudo))
    chosen = known_hosts or (Path(target.known_hosts) if target.known_hosts else None)
    backend = VerifiedParamikoBackend(
        target,
        known_hosts=chosen or DEFAULT_KNOWN_HOSTS,
        verify_host_keys=verify_host_keys,
        connect_timeout=connect_timeout,
        command_timeout=command_timeout,
    )
    return HostSession(target, backend)


def quiet_paramiko() -> None:
    """paramiko logs handshake failures with tracebacks; the scan reports them itself."""
    logger = logging.getLogger("paramiko")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False


def warn_unverified() -> None:
    print(
        "parcelguard: WARNING: SSH host keys are NOT verified (--no-verify-host-keys): "
        "a man-in-the-middle could answer for any host and this scan proves nothing",
        file=sys.stderr,
    )
