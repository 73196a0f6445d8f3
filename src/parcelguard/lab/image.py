"""Build (once) and cache the lab's Debian 12 image.

Two layers, each tagged by a hash of what makes it: the debootstrapped base (about 70 s)
and the lab image (demo services and the neglected state, about 20 s). Changing only the
setup script rebuilds only the second.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from parcelguard.errors import ParcelguardError
from parcelguard.lab.podman import LABEL, ULIMITS, Podman

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
BASE_PACKAGES = (
    "openssh-server,python3,python3-apt,sudo,systemd,systemd-sysv,iproute2,procps,"
    "ca-certificates"
)
BASE_REPO = "localhost/parcelguard-lab-base"
IMAGE_REPO = "localhost/parcelguard-lab"


class ImageError(ParcelguardError):
    pass


def setup_script() -> bytes:
    return resources.files("parcelguard.lab").joinpath("files/image-setup.sh").read_bytes()


def base_ref() -> str:
    digest = hashlib.sha256(f"{SUITE} {MIRROR} {BASE_PACKAGES}".encode()).hexdigest()
    return f"{BASE_REPO}:{digest[:12]}"


def image_ref() -> str:
    digest = hashlib.sha256(base_ref().encode() + b"\0" + setup_script()).hexdigest()
    return f"{IMAGE_REPO}:{digest[:12]}"


def ensure_image(podman: Podman, apt_cache: Path, progress: Callable[[str], None]) -> str:
    """Return the lab image reference, building whatever layer is missing."""
    ref = image_ref()
    if podman.image_exists(ref):
        return ref
    base = base_ref()
    if not podman.image_exists(base):
        _build_base(podman, base, apt_cache.parent, progress)
    progress(f"building lab image {ref} (demo services and seeded weaknesses, ~30 s)")
    builder = f"parcelguard-image-build-{ref.rsplit(':', 1)[1]}"
    podman.remove_containers([builder])
    script = setup_script()
    try:
        podman.run(
            [
                "run",
                "--interactive",
                "--name",
                builder,
                "--label",
                f"{LABEL}=image-build",
                *ULIMITS,
                "--volume",
                f"{apt_cache}:/var/cache/apt/archives",
                base,
                "bash",
                "-s",
            ],
            stdin=script,
            timeout=900,
        )
        podman.run(
            [
                "commit",
                "--quiet",
                "--change",
                'CMD ["/sbin/init"]',
                "--change",
                "STOPSIGNAL SIGRTMIN+3",
                builder,
                ref,
            ],
            timeout=300,
        )
    finally:
        podman.remove_containers([builder])
    return ref


def _build_base(podman: Podman, ref: str, workdir: Path, progress: Callable[[str], None]) -> None:
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        raise ImageError(
            "debootstrap is not installed", "apt-get install -y debootstrap (or run scripts/setup)"
        )
    progress(f"building base image {ref} with debootstrap (once, ~70 s)")
    workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rootfs-", dir=workdir) as tmp:
        rootfs = Path(tmp) / "rootfs"
        proc = subprocess.run(
            [
                debootstrap,
                "--variant=minbase",
                f"--include={BASE_PACKAGES}",
                SUITE,
                str(rootfs),
                MIRROR,
            ],
            capture_output=True,
            timeout=1200,
            check=False,
        )
        if proc.returncode != 0:
            tail = proc.stdout.decode("utf-8", "replace").strip().splitlines()[-1:]
            raise ImageError(
                f"debootstrap failed: {' '.join(tail) or 'no output'}",
                f"check that {MIRROR} is reachable",
            )
        with subprocess.Popen(
            ["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE
        ) as tar:
            imported = subprocess.run(
                [podman.binary, "import", "--quiet", "-", ref],
                stdin=tar.stdout,
                capture_output=True,
                timeout=600,
                check=False,
            )
        if tar.returncode != 0 or imported.returncode != 0:
            raise ImageError(f"podman import of the base image failed: {imported.stderr!r}")
