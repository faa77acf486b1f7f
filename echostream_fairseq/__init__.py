"""EchoStream: streaming speech-to-speech translation as a fairseq plugin.

``fairseq-train --user-dir echostream_fairseq`` (or ``import echostream_fairseq``) registers the
``echostream_s2st`` task, the ``echostream`` model with its archs and the
``echostream_multitask`` criterion. fairseq's ``--user-dir`` imports the folder under its own
name, ``echostream_fairseq``, so both routes share one module and register once.
"""
from . import checkpoint_compat

checkpoint_compat.allow_fairseq_checkpoints()

from . import criterions, models, tasks  # noqa: E402,F401  (registrations)
