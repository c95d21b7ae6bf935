"""Errors a user can act on. The CLI prints their message as one line and exits non-zero."""


class EdgeAdError(Exception):
    """A problem with the user's input or environment, phrased as what to fix."""


class BundleError(EdgeAdError):
    pass


class ImageError(EdgeAdError):
    pass


class SourceError(EdgeAdError):
    pass


class ConfigError(EdgeAdError):
    pass


def missing_extra(package: str, extra: str) -> EdgeAdError:
    return EdgeAdError(f"{package} is not installed: pip install 'edge-ad[{extra}]'")
