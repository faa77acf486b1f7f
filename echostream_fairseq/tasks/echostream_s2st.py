"""The ``echostream_s2st`` task: fairseq's speech_to_speech task with discrete-unit targets,
a StreamSpeech-shaped multitask YAML, our own audio reading and strict input checks."""
from __future__ import annotations

import logging
from pathlib import Path
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
import yaml
from fairseq.data import Dictionary
from fairseq.data.audio.audio_utils import get_features_or_waveform, parse_path
from fairseq.data.audio.data_cfg import S2SDataConfig, SingleTaskConfig
from fairseq.data.audio.speech_to_speech_dataset import SpeechToSpeechMultitaskDataset
from fairseq.data.audio.speech_to_text_dataset import SpeechToTextDatasetCreator, TextTargetMultitaskData
from fairseq.tasks import LegacyFairseqTask, register_task
from fairseq.tasks.speech_to_speech import SpeechToSpeechTask
from fairseq.tasks.speech_to_text import DummyMultiTask

from .. import features
from ..config import finite_nonnegative
from ..models.echostream import ASR_TASK, MT_TASK, ST_TASK

logger = logging.getLogger(__name__)

# multitask entry name -> the decoder type it must declare
MULTITASK_ROLES = {ASR_TASK: "ctc", ST_TASK: "ctc", MT_TASK: "transformer"}


class DataConfigError(ValueError):
    """A data or multitask config is unusable; the message names the file and the entry."""


def _resolve(path: str, root: Path) -> Path:
    p = Path(path)
    return p if p.is_absolute() else root / p


class EchoStreamDataConfig(S2SDataConfig):
    """fairseq's S2S data config with relative paths resolved against the config's folder
    (so a prepared data folder can move) and every referenced file checked."""

    def __init__(self, yaml_path: Path):
        yaml_path = Path(yaml_path)
        if not yaml_path.is_file():
            raise DataConfigError(f"data config not found: {yaml_path}")
        super().__init__(yaml_path)
        if not self.config:
            raise DataConfigError(f"data config {yaml_path} is empty or not valid YAML")
        root = yaml_path.parent
        cmvn = self.config.get("global_cmvn", {}).get("stats_npz_path")
        if cmvn is not None:
            p = _resolve(cmvn, root)
            if not p.is_file():
                raise DataConfigError(f"{yaml_path}: global_cmvn.stats_npz_path points at a missing file: {p}")
            self.config["global_cmvn"]["stats_npz_path"] = str(p)
        for key in ("transforms", "feature_transforms"):
            for split, names in (self.config.get(key) or {}).items():
                if "global_cmvn" in names and cmvn is None:
                    raise DataConfigError(f"{yaml_path}: {key}.{split} uses global_cmvn but global_cmvn.stats_npz_path is not set")
        voc = self.config.get("vocoder")
        if voc is not None:
            if voc.get("type") != "code_hifigan":
                raise DataConfigError(f"{yaml_path}: vocoder.type must be code_hifigan, got {voc.get('type')!r}")
            for k in ("checkpoint", "config"):
                if k not in voc:
                    raise DataConfigError(f"{yaml_path}: vocoder.{k} is missing")
                p = _resolve(voc[k], root)
                if not p.is_file():
                    raise DataConfigError(f"{yaml_path}: vocoder.{k} points at a missing file: {p}")
                voc[k] = str(p)
        if self.config.get("audio_root"):
            self.config["audio_root"] = str(_resolve(self.config["audio_root"], root))
        self.silence_augment = _augment(self.config, "silence_augment", SilenceAugment, yaml_path)
        self.voice_augment = _augment(self.config, "voice_augment", VoiceAugment, yaml_path)
        self.length_bound = _length_bound(self.config.get("length_bound"), yaml_path)
        self.unit_blank_penalty = _unit_blank_penalty(self.config.get("unit_blank_penalty", 0.0), yaml_path)
        self.input_level = _augment(self.config, "input_level", features.InputLevel, yaml_path)
        if self.input_feat_per_channel != features.NUM_MEL_BINS:
            raise DataConfigError(
                f"{yaml_path}: input_feat_per_channel is {self.input_feat_per_channel}; "
                f"the front end computes {features.NUM_MEL_BINS}-dim fbank"
            )


def _augment(config: dict, key: str, cls, yaml_path: Path):
    """The data config's entry ``key`` (augmentation, input level) as ``cls`` (None when absent);
    a bad entry is an error naming the file and the key."""
    entry = config.get(key)
    if entry is None:
        return None
    if not isinstance(entry, dict):
        raise DataConfigError(f"{yaml_path}: {key} must be a mapping, got {entry!r}")
    try:
        return cls(**entry)
    except (TypeError, ValueError) as e:
        raise DataConfigError(f"{yaml_path}: {key}: {e}") from None


def check_world_size(args) -> None:
    """Several processes started by a launcher (torchrun sets WORLD_SIZE) with fairseq told of
    fewer would each train alone, into the same --save-dir: refuse, naming the flag."""
    import os

    launched = int(os.environ.get("WORLD_SIZE", "1") or 1)
    told = getattr(args, "distributed_world_size", None)
    if launched > 1 and told is not None and told != launched:
        raise ValueError(
            f"{launched} processes were launched (WORLD_SIZE={launched}, e.g. by torchrun) but --distributed-world-size is "
            f"{told}: each process would train alone into the same --save-dir. Pass --distributed-world-size {launched} "
            "(on CPU: --cpu --distributed-backend gloo --distributed-init-method env:// --distributed-no-spawn "
            "--ddp-backend legacy_ddp)")


def init_from_checkpoint(model: torch.nn.Module, path: Path) -> List[str]:
    """Copy every parameter of a fairseq checkpoint whose name and shape match ``model``'s;
    returns (and logs) the names left at their fresh initialisation."""
    if not path.is_file():
        raise FileNotFoundError(f"--init-from: checkpoint not found: {path}")
    from fairseq import checkpoint_utils

    old = checkpoint_utils.load_checkpoint_to_cpu(str(path))["model"]
    own = model.state_dict()
    copied = {k: v for k, v in old.items() if k in own and own[k].shape == v.shape}
    if not copied:
        raise ValueError(f"--init-from {path}: no parameter matches the model in name and shape")
    model.load_state_dict(copied, strict=False)
    fresh = sorted(k for k in own if k not in copied)
    logger.info("--init-from %s: %d of %d tensors copied; fresh: %s", path, len(copied), len(own), ", ".join(fresh) or "none")
    grow = getattr(model, "start_grown_layers_as_identity", None)
    grown = grow(fresh) if grow is not None else []
    if grown:
        logger.info("--init-from %s: layers it lacked start as the identity: %s", path, ", ".join(grown))
    return fresh


@dataclass(frozen=True)
class LengthBound:
    """Target subwords allowed for a source: ``tokens_per_second`` x seconds + ``extra``.
    ``echostream-prep-s2st`` sets it from the training data (its highest rate, with a margin)."""

    tokens_per_second: float
    extra: int

    def max_tokens(self, source_seconds: float) -> int:
        from ..decoding import max_target_tokens

        return max_target_tokens(source_seconds, self.tokens_per_second, self.extra)


# for data folders made before prep wrote the bound: twice the toy corpus's highest rate (10.3/s)
DEFAULT_LENGTH_BOUND = LengthBound(20.0, 10)


def _length_bound(entry, yaml_path: Path) -> LengthBound:
    if entry is None:
        logger.warning("%s has no length_bound; target length bound %s", yaml_path, DEFAULT_LENGTH_BOUND)
        return DEFAULT_LENGTH_BOUND
    if not isinstance(entry, dict) or set(entry) != {"tokens_per_second", "extra"}:
        raise DataConfigError(f"{yaml_path}: length_bound must have exactly the keys tokens_per_second and extra, got {entry!r}")
    tps, extra = entry["tokens_per_second"], entry["extra"]
    if isinstance(tps, bool) or not isinstance(tps, (int, float)) or not tps > 0:
        raise DataConfigError(f"{yaml_path}: length_bound.tokens_per_second must be a positive number, got {tps!r}")
    if isinstance(extra, bool) or not isinstance(extra, int) or extra < 1:
        raise DataConfigError(f"{yaml_path}: length_bound.extra must be an integer >= 1, got {extra!r}")
    return LengthBound(float(tps), extra)


def _unit_blank_penalty(value, yaml_path: Path) -> float:
    """How much the blank's score is lowered when the unit decoder's CTC is decoded
    (decoding.unit_frames): a number >= 0, set per model from dev figures; 0 is plain greedy."""
    if not finite_nonnegative(value):
        raise DataConfigError(f"{yaml_path}: unit_blank_penalty must be a finite number >= 0, got {value!r}")
    return float(value)


@dataclass
class SilenceAugment:
    """Training-split audio gets, with probability ``prob``, leading and trailing silence of
    0..``max_ms`` each over white noise at ``noise_db`` (a [low, high] dBFS range): utterances
    then start and end the way sentences do inside a stream or after a microphone opens."""

    prob: float = 0.5
    max_ms: float = 1500.0
    noise_db: List[float] = field(default_factory=lambda: [-75.0, -50.0])

    def __post_init__(self):
        if not 0 <= self.prob <= 1 or self.max_ms < 0 or len(self.noise_db) != 2 or self.noise_db[0] > self.noise_db[1]:
            raise ValueError(f"need 0 <= prob <= 1, max_ms >= 0 and noise_db [low, high], got {self}")

    def __call__(self, wav: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.random() >= self.prob:
            return wav
        sr = features.SAMPLE_RATE
        lead, tail = (int(rng.uniform(0, self.max_ms) * sr / 1000) for _ in range(2))
        out = np.concatenate([np.zeros(lead, np.float32), wav, np.zeros(tail, np.float32)])
        noise = 10 ** (rng.uniform(*self.noise_db) / 20)
        return np.clip(out + (rng.standard_normal(out.size) * noise).astype(np.float32), -1, 1)


def _range(name: str, value, lo: float, hi: float) -> Tuple[float, float]:
    """A [low, high] setting inside [lo, hi]."""
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be [low, high], got {value!r}") from None
    if not lo <= a <= b <= hi:
        raise ValueError(f"{name} must be [low, high] with {lo} <= low <= high <= {hi}, got {value!r}")
    return a, b


@dataclass
class VoiceAugment:
    """Training-split audio as if another voice in another room said it, drawn per epoch and
    utterance: ``speed`` resamples (tempo and pitch together, as Kaldi's speed perturbation),
    ``vtlp`` warps the fbank's frequency axis (vocal tract length), with probability
    ``reverb_prob`` a synthetic room (exponentially decaying noise, RT60 drawn from ``rt60``
    seconds), with probability ``noise_prob`` white noise at ``snr_db``. The front end at
    inference is unchanged."""

    speed: List[float] = field(default_factory=lambda: [0.85, 1.15])
    vtlp: List[float] = field(default_factory=lambda: [0.9, 1.1])
    reverb_prob: float = 0.3
    rt60: List[float] = field(default_factory=lambda: [0.1, 0.5])
    noise_prob: float = 0.5
    snr_db: List[float] = field(default_factory=lambda: [10.0, 40.0])

    def __post_init__(self):
        self.speed = _range("speed", self.speed, 0.5, 2.0)
        self.vtlp = _range("vtlp", self.vtlp, 0.8, 1.2)
        self.rt60 = _range("rt60", self.rt60, 0.0, 2.0)
        self.snr_db = _range("snr_db", self.snr_db, -10.0, 100.0)
        for name in ("reverb_prob", "noise_prob"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
                raise ValueError(f"{name} must be a number in [0, 1], got {v!r}")

    def __call__(self, wav: np.ndarray, rng: np.random.Generator) -> Tuple[np.ndarray, float]:
        """``(augmented wav, vtln warp factor for the fbank)``."""
        sr = features.SAMPLE_RATE
        speed = round(rng.uniform(*self.speed), 2)
        warp = float(rng.uniform(*self.vtlp))
        reverb, rt60 = rng.random() < self.reverb_prob, rng.uniform(*self.rt60)
        noisy, snr = rng.random() < self.noise_prob, rng.uniform(*self.snr_db)
        out = np.asarray(wav, np.float32)
        if speed != 1.0:  # played `speed` times faster: fewer samples at the same rate
            out = features.resample(out, int(round(speed * 100)), 100)
        rms = float(np.sqrt(np.mean(out.astype(np.float64) ** 2))) if out.size else 0.0
        if reverb and rt60 > 0 and rms > 0:
            n = max(1, int(rt60 * sr))
            t = np.arange(n) / sr
            rir = rng.standard_normal(n) * np.exp(-6.908 * t / rt60) * 0.3
            rir[0] = 1.0
            wet = np.fft.irfft(np.fft.rfft(out, out.size + n) * np.fft.rfft(rir, out.size + n), out.size + n)[: out.size]
            out = (wet * rms / max(np.sqrt(np.mean(wet ** 2)), 1e-9)).astype(np.float32)
        if noisy and rms > 0:
            out = out + (rng.standard_normal(out.size) * rms * 10 ** (-snr / 20)).astype(np.float32)
        return np.clip(out, -1, 1).astype(np.float32), warp


def load_multitask_config(yaml_path: Path) -> Dict[str, SingleTaskConfig]:
    """Read and check the multitask YAML; ``dict`` and ``data`` resolve against its folder."""
    yaml_path = Path(yaml_path)
    if not yaml_path.is_file():
        raise DataConfigError(f"multitask config not found: {yaml_path}")
    with open(yaml_path) as f:
        try:
            raw = yaml.safe_load(f) or {}
        except yaml.YAMLError as e:
            raise DataConfigError(f"multitask config {yaml_path} is not valid YAML: {e}") from e
    if not isinstance(raw, dict):
        raise DataConfigError(f"multitask config {yaml_path} must map task names to settings")
    out = {}
    for name, cfg in raw.items():
        if name not in MULTITASK_ROLES:
            raise DataConfigError(
                f"{yaml_path}: unknown multitask entry '{name}' (expected: {', '.join(MULTITASK_ROLES)})"
            )
        if not isinstance(cfg, dict):
            raise DataConfigError(f"{yaml_path}: entry '{name}' must be a mapping")
        for key in ("decoder_type", "dict", "data", "loss_weight"):
            if key not in cfg:
                raise DataConfigError(f"{yaml_path}: entry '{name}' has no '{key}'")
        if cfg["decoder_type"] != MULTITASK_ROLES[name]:
            raise DataConfigError(
                f"{yaml_path}: entry '{name}' must have decoder_type {MULTITASK_ROLES[name]}, got {cfg['decoder_type']!r}"
            )
        cfg = dict(cfg)
        cfg["dict"] = str(_resolve(cfg["dict"], yaml_path.parent))
        cfg["data"] = str(_resolve(cfg["data"], yaml_path.parent))
        if not Path(cfg["dict"]).is_file():
            raise DataConfigError(f"{yaml_path}: entry '{name}': dict file not found: {cfg['dict']}")
        if not Path(cfg["data"]).is_dir():
            raise DataConfigError(f"{yaml_path}: entry '{name}': data folder not found: {cfg['data']}")
        try:
            cfg["loss_weight"] = float(cfg["loss_weight"])
        except (TypeError, ValueError):
            raise DataConfigError(f"{yaml_path}: entry '{name}': loss_weight must be a number") from None
        out[name] = SingleTaskConfig(name, cfg)
    if MT_TASK not in out:
        raise DataConfigError(f"{yaml_path}: entry '{MT_TASK}' is required (the MT decoder feeds the unit decoder)")
    return out


class EchoStreamDataset(SpeechToSpeechMultitaskDataset):
    """Source audio is a wav (read with soundfile, fbank by :mod:`echostream_fairseq.features`)
    or a ``zip:offset:length`` of fbank ``.npy`` (read by fairseq). On training splits, wavs get
    the data config's ``silence_augment`` (drawn per epoch and utterance, reproducibly)."""

    epoch = 1

    def set_epoch(self, epoch):
        self.epoch = epoch

    @property
    def can_reuse_epoch_itr_across_epochs(self):
        return False

    def _get_source_audio(self, index: int) -> torch.Tensor:
        path = self.audio_paths[index]
        _, slice_ptr = parse_path(path)
        if slice_ptr:
            feats = get_features_or_waveform(path, need_waveform=False)
        else:
            wav = features.read_audio(path)
            warp = 1.0
            if self.is_train_split:
                rng = np.random.default_rng([self.epoch, index])
                if self.cfg.voice_augment is not None:
                    wav, warp = self.cfg.voice_augment(wav, rng)
                if self.cfg.silence_augment is not None:
                    wav = self.cfg.silence_augment(wav, rng)
            feats = features.fbank(wav, vtln_warp=warp)
        if self.cfg.input_level is not None:
            feats = self.cfg.input_level.apply(feats)
        if self.feature_transforms is not None:
            feats = self.feature_transforms(feats)
        return torch.from_numpy(feats).float()


def _check_source(path: str, where: str) -> None:
    real, slice_ptr = parse_path(path)
    if not Path(real).is_file():
        raise FileNotFoundError(f"{where}: source audio not found: {real}")
    if not slice_ptr and Path(real).suffix.lower() not in (".wav", ".flac", ".ogg"):
        raise ValueError(f"{where}: source audio must be a wav/flac/ogg file or zip:offset:length, got {path}")


def load_manifest(root: Path, split: str, data_cfg: S2SDataConfig, unit_dict: Dictionary, num_units: int, multitask):
    """Read ``{root}/{split}.tsv`` and build the dataset, checking every row first."""
    tsv = Path(root) / f"{split}.tsv"
    if not tsv.is_file():
        raise FileNotFoundError(f"manifest not found: {tsv}")
    samples = SpeechToTextDatasetCreator._load_samples_from_tsv(str(root), split)
    required = ("id", "src_audio", "src_n_frames", "tgt_audio", "tgt_n_frames")
    if samples and any(k not in samples[0] for k in required):
        raise ValueError(f"{tsv}: header must have the columns {' '.join(required)}")
    audio_root = Path(data_cfg.audio_root) if data_cfg.audio_root else Path(root)
    src_paths, tgt_units = [], []
    for i, s in enumerate(samples):
        where = f"{tsv}: line {i + 2} (id {s['id']})"
        src = s["src_audio"]
        real, _ = parse_path(src)
        src = src if Path(real).is_absolute() else str(audio_root / src)
        _check_source(src, where)
        try:
            units = [int(u) for u in s["tgt_audio"].split()]
            int(s["src_n_frames"]), int(s["tgt_n_frames"])
        except ValueError:
            raise ValueError(f"{where}: tgt_audio must be integer unit ids and n_frames integers") from None
        if not units:
            raise ValueError(f"{where}: empty unit sequence")
        bad = [u for u in units if not 0 <= u < num_units]
        if bad:
            raise ValueError(f"{where}: unit id {bad[0]} outside the unit dictionary (0..{num_units - 1})")
        src_paths.append(src)
        tgt_units.append(s["tgt_audio"])
    ds = EchoStreamDataset(
        split=split,
        is_train_split=split.startswith("train"),
        data_cfg=data_cfg,
        src_audio_paths=src_paths,
        src_n_frames=[int(s["src_n_frames"]) for s in samples],
        tgt_audio_paths=tgt_units,
        tgt_n_frames=[len(u.split()) for u in tgt_units],
        src_langs=[s.get("src_lang", "") for s in samples],
        tgt_langs=[s.get("tgt_lang", "") for s in samples],
        ids=[s["id"] for s in samples],
        target_is_code=True,
        tgt_dict=unit_dict,
    )
    for name, task in multitask.items():
        data = TextTargetMultitaskData(task.args, split, task.target_dictionary)
        missing = [sid for sid in ds.ids if sid not in data.data]
        if missing:
            raise ValueError(f"{Path(task.args.data) / (split + '.tsv')}: no '{name}' target for id {missing[0]}")
        ds.add_multitask_dataset(name, data)
    return ds


@register_task("echostream_s2st")
class EchoStreamS2STTask(SpeechToSpeechTask):
    @classmethod
    def add_args(cls, parser):
        super().add_args(parser)
        parser.add_argument(
            "--echostream-write-wav",
            default="auto",
            choices=["auto", "yes", "no"],
            help="fairseq-generate: synthesise wavs with the data config's vocoder (auto: when it names one)",
        )
        parser.add_argument(
            "--init-from",
            metavar="CHECKPOINT",
            help="fairseq-train from nothing: start from this checkpoint's parameters wherever name and shape match "
                 "(e.g. a model trained on other units: everything but the unit output layer); ignored on resume",
        )

    def __init__(self, args, tgt_dict, multitask_cfgs: Dict[str, SingleTaskConfig]):
        LegacyFairseqTask.__init__(self, args)
        self.tgt_dict = tgt_dict
        self.data_cfg = EchoStreamDataConfig(Path(args.data) / args.config_yaml)
        self.multitask_cfgs = multitask_cfgs
        self.multitask_tasks = {
            name: DummyMultiTask(cfg, cfg.tgt_dict, first_pass=name == MT_TASK) for name, cfg in multitask_cfgs.items()
        }
        self.tgt_dict_mt = self.multitask_tasks[MT_TASK].target_dictionary
        self.eos_token_mt = None
        self._infer_tgt_lang_id = None

    @classmethod
    def setup_task(cls, args, **kwargs):
        check_world_size(args)
        data = Path(args.data)
        if not data.is_dir():
            raise FileNotFoundError(f"data folder not found: {data}")
        data_cfg = EchoStreamDataConfig(data / args.config_yaml)  # fails early with a clear message
        if getattr(args, "multitask_config_yaml", None) is None:
            raise DataConfigError("--multitask-config-yaml is required for the echostream_s2st task")
        multitask = load_multitask_config(data / args.multitask_config_yaml)
        if args.target_code_size is None:
            args.target_code_size = data_cfg.config.get("num_units")
        if args.target_code_size is None:
            raise DataConfigError(
                "the number of discrete units is unknown: pass --target-code-size or set num_units in the data config"
            )
        args.target_is_code = True
        tgt_dict = Dictionary()
        for i in range(args.target_code_size):
            tgt_dict.add_symbol(str(i))
        logger.info(f"unit dictionary: {args.target_code_size} units + specials (blank = <s>)")
        return cls(args, tgt_dict, multitask)

    def multitask_dictionary(self, name: str) -> Optional[Dictionary]:
        task = self.multitask_tasks.get(name)
        return None if task is None else task.target_dictionary

    def loss_weight(self, name: str) -> float:
        cfg = self.multitask_cfgs.get(name)
        return 0.0 if cfg is None else cfg.config["loss_weight"]

    def load_dataset(self, split, epoch=1, combine=False, **kwargs):
        self.datasets[split] = load_manifest(
            Path(self.args.data), split, self.data_cfg, self.tgt_dict, self.args.target_code_size, self.multitask_tasks
        )

    def build_model(self, args, from_checkpoint=False):
        args.input_feat_per_channel = self.data_cfg.input_feat_per_channel
        args.input_channels = self.data_cfg.input_transformed_channels
        args.target_speaker_embed = False
        args.n_frames_per_step = 1
        model = LegacyFairseqTask.build_model(self, args, from_checkpoint)
        if getattr(args, "init_from", None) and not from_checkpoint:
            init_from_checkpoint(model, Path(args.init_from))
        return model

    def get_batch_iterator(self, dataset, *args, **kwargs):
        # fairseq drops the last batch of a split when it is smaller than
        # --required-batch-size-multiple; evaluation must see every utterance.
        if not getattr(dataset, "is_train_split", True):
            kwargs["required_batch_size_multiple"] = 1
        return super().get_batch_iterator(dataset, *args, **kwargs)

    # fairseq's speech_to_speech steps drive its own multitask decoders; ours live in the model
    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False):
        return LegacyFairseqTask.train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad)

    def valid_step(self, sample, model, criterion):
        return LegacyFairseqTask.valid_step(self, sample, model, criterion)

    def build_criterion(self, args):
        return LegacyFairseqTask.build_criterion(self, args)

    def build_generator(self, models, args, seq_gen_cls=None, extra_gen_cls_kwargs=None):
        from ..generator import EchoStreamGenerator

        return EchoStreamGenerator(models, self, args)

    def inference_step(self, generator, models, sample, prefix_tokens=None, constraints=None):
        with torch.no_grad():
            hypos = generator.generate(models, sample)
        writer = self._generation_writer()
        if writer is not None:
            writer.write(sample, hypos)
        return hypos

    def _generation_writer(self):
        """Set up on first use in ``fairseq-generate``: outputs go to ``{results_path}/{gen_subset}/``."""
        if hasattr(self, "_writer"):
            return self._writer
        from ..generator import GenerationWriter
        from ..vocoder import UnitVocoder

        results = getattr(self.args, "results_path", None)
        want_wav = getattr(self.args, "echostream_write_wav", "auto")
        voc_cfg = self.data_cfg.config.get("vocoder")
        if want_wav == "yes" and voc_cfg is None:
            raise DataConfigError(f"--echostream-write-wav yes, but {self.args.config_yaml} names no vocoder")
        if results is None:
            if want_wav == "yes":
                raise ValueError("--echostream-write-wav yes needs --results-path (where the wavs go)")
            logger.info("no --results-path: texts, units and wavs are not written to files")
            self._writer = None
            return None
        vocoder = None
        if voc_cfg is not None and want_wav != "no":
            vocoder = UnitVocoder(voc_cfg["checkpoint"], voc_cfg["config"])
            if vocoder.num_units != self.args.target_code_size:
                raise DataConfigError(
                    f"vocoder {voc_cfg['config']} has {vocoder.num_units} units, the task {self.args.target_code_size}"
                )
        split = self.args.gen_subset
        self._writer = GenerationWriter(Path(results) / split, self.datasets[split].ids, vocoder)
        logger.info(f"writing mt/asr/st_ctc/units{' and wavs' if vocoder else ''} to {self._writer.folder}")
        return self._writer
