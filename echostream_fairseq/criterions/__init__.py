from . import echostream_multitask  # noqa: F401
