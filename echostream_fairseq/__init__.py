"""EchoStream: streaming speech-to-speech translation as a fairseq plugin.

``fairseq-train --user-dir echostream_fairseq`` (or ``import echostream_fairseq``) registers the
``echostream_s2st`` task, the ``echostream`` model with its archs and the
``echostream_multitask`` criterion. fairseq's ``--user-dir`` imports the folder under its own
name, ``echostream_fairseq``, so both routes share one module and register once.
"""
import logging
import warnings

# fairseq's text_to_speech task logs a tensorboardX hint at import; it is noise for our CLIs
logging.getLogger("fairseq.tasks.text_to_speech").setLevel(logging.WARNING)
# pydub (pulled in by a dependency) warns at import that ffmpeg is missing; the project reads
# audio with soundfile and never calls pydub
warnings.filterwarnings("ignore", message="Couldn't find ffmpeg or avconv", category=RuntimeWarning)

from . import checkpoint_compat  # noqa: E402

checkpoint_compat.allow_fairseq_checkpoints()

from . import criterions, models, tasks  # noqa: E402,F401  (registrations)

import sys as _sys  # noqa: E402

# `simuleval --user-dir echostream_fairseq` imports this package before it parses metrics:
# register our ASR-BLEU scorers then (fairseq runs do not import simuleval and skip this).
if "simuleval" in _sys.modules:
    from .evaluation import asr_bleu, simuleval_ext  # noqa: F401
