"""parcelguard: harden and audit courier servers under the delivery-user information Provisions."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("parcelguard")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
