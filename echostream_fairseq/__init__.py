"""EchoStream: streaming speech-to-speech translation as a fairseq plugin.

``fairseq-train --user-dir echostream_fairseq`` (or ``import echostream_fairseq``) registers the
``echostream_s2st`` task, the ``echostream`` model with its archs and the
``echostream_multitask`` criterion. fairseq's ``--user-dir`` imports the folder under its own
name, ``echostream_fairseq``, so both routes share one module and register once.
"""
import logging

# fairseq's text_to_speech task logs a tensorboardX hint at import; it is noise for our CLIs
logging.getLogger("fairseq.tasks.text_to_speech").setLevel(logging.WARNING)

from . import checkpoint_compat  # noqa: E402

checkpoint_compat.allow_fairseq_checkpoints()

from . import criterions, models, tasks  # noqa: E402,F401  (registrations)
