"""The streaming engine: equality with offline decoding, counted incrementality, policy."""
import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import TRAIN_ARGS, cli, run
from echostream_fairseq import features
from echostream_fairseq.decoding import ctc_collapse, unit_ids
from echostream_fairseq.models.echostream import ctc_blank
from echostream_fairseq.streaming.engine import PolicyConfig, StreamingSession, load_resources

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def res(trained_micro, micro_data):
    return load_resources(trained_micro, micro_data)


def _ids(micro_data, split):
    return [l.split("\t")[0] for l in (micro_data / f"{split}.tsv").read_text().splitlines()[1:]]


def _stream(res, wav, policy, chunk=5120):
    s = StreamingSession(res, policy)
    outs = [s.step(wav[i : i + chunk]) for i in range(0, len(wav), chunk)]
    outs.append(s.finish())
    return s, outs


def test_wait_until_end_equals_fairseq_generate(res, trained_micro, micro_data, tmp_path):
    results = tmp_path / "gen"
    run([cli("fairseq-generate"), micro_data, "--user-dir", TRAIN_ARGS[1], "--task", "echostream_s2st",
         "--config-yaml", "config.yaml", "--multitask-config-yaml", "config_mtl.yaml", "--path", trained_micro,
         "--gen-subset", "train", "--max-tokens", "40000", "--beam", "1", "--results-path", results])
    out = results / "train"
    mt = dict(l.split("\t", 1) for l in (out / "mt.txt").read_text().splitlines())
    asr = dict(l.split("\t", 1) for l in (out / "asr.txt").read_text().splitlines())
    units = dict(l.split("\t", 1) for l in (out / "units.txt").read_text().splitlines())
    checked_units = 0
    for uid in _ids(micro_data, "train")[:6]:
        wav = features.read_audio(micro_data / "audio" / f"{uid}_src.wav")
        s, outs = _stream(res, wav, PolicyConfig(wait_until_end=True, vocoder_context_frames=None), chunk=3001)
        assert s.translation == mt[uid].strip(), uid
        assert s.transcript == asr[uid].strip(), uid
        assert " ".join(map(str, s.units)) == units[uid].strip(), uid
        pcm = np.concatenate([o.pcm for o in outs])
        ref, sr = sf.read(out / "wav" / f"{uid}.wav", dtype="float32")  # written as 16-bit PCM
        assert sr == 16000 and len(pcm) == len(ref), uid
        assert np.abs(pcm - ref).max() < 2e-4, uid
        checked_units += len(s.units)
    assert checked_units > 0


def test_unit_blank_penalty_decodes_alike_offline_and_streaming(res, trained_micro, micro_data, tmp_path):
    """The data config's unit_blank_penalty is how fairseq-generate and the engine both decode the
    unit CTC. A copy of the model whose blank scores B higher says fewer units; with penalty B in
    its data config it says, offline and streaming alike, what the model itself says plain greedy."""
    import shutil

    import yaml

    B = 20.0
    ckpt = torch.load(trained_micro, map_location="cpu", weights_only=False)
    ckpt["model"]["unit_decoder.out.bias"][ctc_blank(res.unit_dict)] += B
    blankier = tmp_path / "blankier.pt"
    torch.save(ckpt, blankier)
    data = tmp_path / "data"
    shutil.copytree(micro_data, data)
    cfg = yaml.safe_load((data / "config.yaml").read_text())
    cfg["unit_blank_penalty"] = B
    (data / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    shifted, undone = load_resources(blankier, micro_data, vocoder=False), load_resources(blankier, data, vocoder=False)
    assert undone.unit_blank_penalty == B and shifted.unit_blank_penalty == res.unit_blank_penalty == 0.0
    results = tmp_path / "gen"
    run([cli("fairseq-generate"), data, "--user-dir", TRAIN_ARGS[1], "--task", "echostream_s2st",
         "--config-yaml", "config.yaml", "--multitask-config-yaml", "config_mtl.yaml", "--path", blankier,
         "--gen-subset", "train", "--max-tokens", "40000", "--beam", "1", "--results-path", results])
    units = dict(l.split("\t", 1) for l in (results / "train" / "units.txt").read_text().splitlines())
    plain = fewer = 0
    for uid in _ids(micro_data, "train")[:6]:
        wav = features.read_audio(micro_data / "audio" / f"{uid}_src.wav")
        said = []
        for r in (res, shifted, undone):
            s = StreamingSession(r, PolicyConfig(wait_until_end=True), speech=False)
            for i in range(0, len(wav), 3001):
                s.step(wav[i : i + 3001])
            s.finish()
            said.append(s.units)
        assert said[2] == said[0], uid
        assert " ".join(map(str, said[2])) == units[uid].strip(), uid
        plain, fewer = plain + len(said[0]), fewer + len(said[0]) - len(said[1])
    assert plain > 0 and fewer > 0


def test_incrementality_is_counted(res, micro_data):
    uid = _ids(micro_data, "dev")[0]
    wav = features.read_audio(micro_data / "audio" / f"{uid}_src.wav")
    s, outs = _stream(res, wav, PolicyConfig(vocoder_context_frames=None, vocoder_flush=False), chunk=2560)
    c = s.count
    assert c.samples == len(wav)
    assert c.fbank_frames == features.num_frames(len(wav))
    assert c.encoder_frames == -(-c.fbank_frames // 4)  # every frame encoded once
    assert s.enc_state.frames_out == c.encoder_frames
    committed = len(s.committed)
    # one decoder step per committed token, one for the final end-of-sentence, one per stop
    assert c.mt_steps == committed + 1 + c.stop_decisions
    assert c.unit_decoder_tokens == committed
    pcm = np.concatenate([o.pcm for o in outs])
    assert len(pcm) == sum(s.vocoder.durations) * s.vocoder.hop
    with torch.no_grad():
        offline = res.vocoder(torch.tensor(s.units)).numpy()
    assert len(offline) == len(pcm) and np.abs(offline - pcm).max() < 1e-5  # no gap, no repeat


def test_default_vocoder_context_stays_close_to_offline(res, micro_data):
    uid = _ids(micro_data, "dev")[1]
    wav = features.read_audio(micro_data / "audio" / f"{uid}_src.wav")
    s, outs = _stream(res, wav, PolicyConfig(vocoder_flush=False))
    pcm = np.concatenate([o.pcm for o in outs])
    with torch.no_grad():
        offline = res.vocoder(torch.tensor(s.units)).numpy()
    assert len(offline) == len(pcm)
    assert np.abs(offline - pcm).max() < 0.02 * max(np.abs(offline).max(), 1e-3)


def test_flushed_speech_says_every_emission_in_full(res, micro_data):
    """By default each step speaks all the units it emitted; held back, a step's last units
    wait for the next emission (the pause that would split a word)."""
    held_back = 0
    for uid in _ids(micro_data, "dev")[:3]:
        wav = features.read_audio(micro_data / "audio" / f"{uid}_src.wav")
        for flush in (True, False):
            s = StreamingSession(res, PolicyConfig(vocoder_flush=flush))
            units = samples = 0
            for i in range(0, len(wav), 2560):
                o = s.step(wav[i : i + 2560])
                units, samples = units + len(o.units), samples + len(o.pcm)
                if flush:
                    assert len(s.vocoder.durations) == units and samples == sum(s.vocoder.durations) * s.vocoder.hop, uid
                else:
                    held_back += samples < sum(s.vocoder.durations) * s.vocoder.hop or len(s.vocoder.durations) < units
            o = s.finish()
            assert len(s.vocoder.durations) == units + len(o.units) == len(s.units), uid
            assert samples + len(o.pcm) == sum(s.vocoder.durations) * s.vocoder.hop, uid
    assert held_back > 0  # the test can tell the two modes apart


def test_speech_hold_delays_each_sentence_start_and_keeps_the_speech(res, micro_data):
    """A playout hold releases a sentence's first speech once the source has gone that much
    further, with the speech made meanwhile: the same samples in the same order, later."""
    chunk, hold = 2560, 480.0  # 160 ms steps, held three steps at least
    delayed = 0
    for uid in _ids(micro_data, "dev")[:3]:
        wav = features.read_audio(micro_data / "audio" / f"{uid}_src.wav")
        (s0, now), (s1, held) = (_stream(res, wav, PolicyConfig(speech_hold_ms=h), chunk) for h in (0.0, hold))
        assert s0.units == s1.units and s0.translation == s1.translation, uid
        assert np.array_equal(np.concatenate([o.pcm for o in now]), np.concatenate([o.pcm for o in held])), uid
        first = [next((i for i, o in enumerate(outs) if o.pcm.size), None) for outs in (now, held)]
        if first[0] is None:
            continue
        # released at the first step whose source reaches the first speech + hold, or at the end
        read_ms = [1000 * min(len(wav), (i + 1) * chunk) / features.SAMPLE_RATE for i in range(len(now))]
        due = next((i for i in range(first[0], len(now) - 1) if read_ms[i] >= read_ms[first[0]] + hold), len(now) - 1)
        assert first[1] == due, (uid, first, due)
        delayed += first[1] > first[0]
    assert delayed > 0  # the test can tell a hold from none


def test_whole_word_rule_on_every_emission(res, micro_data):
    for uid in _ids(micro_data, "dev") + _ids(micro_data, "train")[:4]:
        wav = features.read_audio(micro_data / "audio" / f"{uid}_src.wav")
        s = StreamingSession(res, PolicyConfig())
        outs = []
        for i in range(0, len(wav), 1280):
            before = s.emission.emitted
            outs.append(s.step(wav[i : i + 1280]))
            if s.emission.emitted > before:
                # emitted tokens end right before a committed token that starts a new word
                assert s.m.mt_dict[s.committed[s.emission.emitted]].startswith("\u2581"), uid
        outs.append(s.finish())
        assert s.emission.emitted == len(s.committed)
        for o in outs:
            for w in o.words:
                assert w and " " not in w
        # concatenated, the emitted words are exactly the words of the translation
        words = "".join(s.m.mt_dict[t] for t in s.committed).replace("\u2581", " ").split()
        assert [w for o in outs for w in o.words] == words, uid


@pytest.mark.parametrize("whole_word", [True, False])
def test_units_wait_for_whole_words_and_equal_the_sentence_forward(res, micro_data, whole_word):
    """With word look-ahead, streamed units are those of the unit decoder run once over the
    sentence's own decoder states, whether or not text goes out by whole words; a word's units
    never go out before the word is complete."""
    m = res.model
    assert m.word_lookahead
    voiced = 0
    for uid in _ids(micro_data, "dev") + _ids(micro_data, "train")[:3]:
        wav = features.read_audio(micro_data / "audio" / f"{uid}_src.wav")
        s = StreamingSession(res, PolicyConfig(whole_word=whole_word, vocoder_context_frames=None), speech=False)
        for i in range(0, len(wav), 1280):
            s.step(wav[i : i + 1280])
            v = s.emission.voiced
            assert v == 0 or v == len(s.committed) or m.mt_dict[s.committed[v]].startswith("\u2581"), uid
        s.finish()
        if s.count.sentences or not s.committed:
            continue  # one sentence per utterance: its states are the session's
        n = len(s.committed)
        with torch.no_grad():
            logits, _ = m.units_forward(torch.stack(s.text_states)[None], torch.tensor([n]), torch.tensor([s.committed]))
        expected = unit_ids(m.unit_dict, ctc_collapse(logits[0].argmax(-1).tolist(), ctc_blank(m.unit_dict)))
        assert s.units == expected, uid
        voiced += len(expected)
    assert voiced > 0


def test_raising_lag_never_loosens_the_gate_on_dev(res, micro_data):
    """The lag is a bound on commitments: at every chunk the number of committed target tokens
    stays within the CTC allowance, and a higher lag gives a pointwise lower (or equal) allowance.
    (Latency figures per lag on the toy dev set are measured by the recipe, not asserted here:
    with a partly trained model the hypothesis itself changes with the lag.)"""
    chunk = 5120  # 320 ms
    allowance = {}
    for k in (0, 1, 3, 6):
        per_utt = []
        for uid in _ids(micro_data, "dev"):
            wav = features.read_audio(micro_data / "audio" / f"{uid}_src.wav")
            s = StreamingSession(res, PolicyConfig(lag_k=k))
            trace = []
            for i in range(0, len(wav), chunk):
                s.step(wav[i : i + chunk])
                bound = max(0, len(s.st) - k) + 1  # stride 1, whole-word look-ahead of one token
                assert len(s.committed) <= s.allowed <= bound, (uid, k)
                assert s.emission.emitted <= len(s.committed)
                trace.append(s.allowed)
            s.finish()
            per_utt.append(trace)
        allowance[k] = per_utt
    ks = sorted(allowance)
    for lo, hi in zip(ks, ks[1:]):
        for a, b in zip(allowance[lo], allowance[hi]):
            assert all(x >= y for x, y in zip(a, b)), (lo, hi, a, b)
    total = {k: sum(map(sum, v)) for k, v in allowance.items()}
    assert total[6] < total[0], total  # the lag really holds tokens back


def test_session_misuse_is_an_error(res):
    s = StreamingSession(res)
    out = s.finish()  # no audio at all: an empty, finished result
    assert out.finished and out.empty and s.translation == ""
    with pytest.raises(RuntimeError):
        s.step(np.zeros(100, dtype=np.float32))
    with pytest.raises(RuntimeError):
        s.finish()
    with pytest.raises(ValueError):
        PolicyConfig(stride_n=0)
