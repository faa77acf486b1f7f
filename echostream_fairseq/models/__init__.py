from . import echostream  # noqa: F401
