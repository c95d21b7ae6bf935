"""Errors a user can act on. The CLI prints their message as one line and exits non-zero."""


class EdgeAdError(Exception):
    """A problem with the user's input or environment, phrased as what to fix."""


class BundleError(EdgeAdError):
    """A bundle is missing, invalid or cannot be served."""


class ImageError(EdgeAdError):
    """Bytes that are not a usable image."""


class SourceError(EdgeAdError):
    """A camera or stream failed, or its URI is wrong."""


class ConfigError(EdgeAdError):
    """The configuration is wrong; the message names the key."""


def missing_extra(package: str, extra: str) -> EdgeAdError:
    return EdgeAdError(f"{package} is not installed: pip install 'edge-ad[{extra}]'")
