from . import echostream_s2st  # noqa: F401
