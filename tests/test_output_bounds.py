"""Output is bounded by input: the length bound from the data config, the immediate-repeat rule,
and the repetition figure the recipe reports. Rule tests need no model; the bounded-output tests
run the micro model offline and streaming on noise and on a source it cannot read."""
import numpy as np
import pytest
import torch
import yaml

from echostream_fairseq.decoding import OutputBounds, max_target_tokens, repeat_blocked, unsupported_repeats
from echostream_fairseq.evaluation.recipe import invented_repeats
from echostream_fairseq.prep.s2st import length_bound
from echostream_fairseq.tasks.echostream_s2st import DataConfigError, EchoStreamDataConfig

# a toy vocabulary: index -> does the piece start a word
#   0 "▁the"  1 "▁girl"  2 "▁mon"  3 "key"  4 "▁new"  5 "s"
WS = [True, True, True, False, True, False]


def test_repetition_figure_counts_only_invented_repeats():
    refs = ["The old girl washed a cake.", "It is very very big."]
    assert invented_repeats(["The old girl washed a cake.", "It is very very big."], refs) == 0.0
    # 'girl girl girl' = 2 invented repeats; 'very very' is in the reference, a third 'very' is not
    hyps = ["The girl girl girl washed a cake.", "It is very very very big."]
    n_words = 7 + 6
    assert invented_repeats(hyps, refs) == pytest.approx(100 * 3 / n_words)
    assert invented_repeats(["Diego Diego will close a new new new letter."], ["Diego will close a new box."]) == pytest.approx(100 * 3 / 9)


def test_a_third_copy_in_a_row_is_blocked():
    assert repeat_blocked([0, 1], WS) == []
    assert repeat_blocked([0, 1, 1], WS) == [1]  # 'girl girl' may stand, not a third
    assert repeat_blocked([2, 3, 2, 3], WS) == [2]  # 'monkey monkey': the word's first piece
    assert repeat_blocked([0, 1, 0, 1], WS) == [0]  # a phrase: 'the girl the girl'
    assert repeat_blocked([3], WS) == []
    assert repeat_blocked([3, 3], WS) == [3]  # a piece looping inside a word: no third copy either
    assert repeat_blocked([2, 3, 3], WS) == [3]
    assert repeat_blocked([1, 1], WS, max_repeats=1) == [1]
    assert repeat_blocked([1, 0, 1], WS) == []  # not in a row


def test_a_long_clause_looping_is_stopped_at_its_third_copy():
    # measured on ko-en test 00043: the model said this 11-piece clause over and over to the
    # length bound; a phrase of up to MAX_REPEAT_NGRAM pieces gets no third copy
    from pathlib import Path

    import sentencepiece as spm

    from echostream_fairseq.decoding import MAX_REPEAT_NGRAM

    sp = spm.SentencePieceProcessor(model_file=str(Path(__file__).parents[1] / "assets/model/spm_tgt.model"))
    ws = [sp.id_to_piece(i).startswith("\u2581") for i in range(sp.get_piece_size())]
    head = sp.encode("the happy police officer looks for the")
    clause = sp.encode("old police officer olice officer")
    assert 4 < len(clause) <= MAX_REPEAT_NGRAM
    assert repeat_blocked(head + clause, ws) == []
    assert repeat_blocked(head + clause * 2, ws) == [clause[0]]
    # the loop read from any word inside it is a phrase said twice too: "police officer olice
    # officer old" gets no third copy either
    assert repeat_blocked(head + clause * 2 + clause[:3], ws) == [clause[3]]
    assert repeat_blocked(head + clause + sp.encode("looked for the old police officer"), ws) == []


def test_a_second_copy_needs_the_ctc_translation_to_say_it_too():
    # 'girl' then 'girl' again: blocked unless the CTC translation says 'girl girl' itself
    assert unsupported_repeats([0, 1], WS, ctc_tokens=[0, 1, 4]) == [1]
    assert unsupported_repeats([0, 1], WS, ctc_tokens=[0, 1, 1, 4]) == []
    assert unsupported_repeats([0, 1], WS, ctc_tokens=[]) == [1]
    assert unsupported_repeats([0, 1, 4], WS, ctc_tokens=[]) == [4]
    # only one-piece words: 'monkey' (two pieces) is left to the loop stop, and so is a word-internal piece
    assert unsupported_repeats([2, 3], WS, ctc_tokens=[]) == []
    assert unsupported_repeats([3], WS, ctc_tokens=[]) == []
    assert unsupported_repeats([], WS, ctc_tokens=[]) == []


class _Dict:
    pieces = ["<s>", "<pad>", "</s>", "<unk>", "\u2581the", "\u2581girl", "\u2581mon", "key"]

    def __len__(self):
        return len(self.pieces)

    def __getitem__(self, i):
        return self.pieces[i]

    def eos(self):
        return 2


def test_sequence_generator_hook_blocks_loops_and_ends_at_the_bound():
    bounds = OutputBounds(_Dict())
    bounds.max_tokens = [3, 50]  # two sentences, beam 1
    tokens = torch.tensor([[2, 5, 5, 0], [2, 5, 5, 0]])
    lprobs = torch.zeros(2, 8)
    out = bounds(tokens, lprobs.clone(), 2, 1, 2)  # step 2: two tokens generated ('girl girl')
    assert out[0, 5] == -float("inf") and out[1, 5] == -float("inf")  # a third 'girl'
    assert torch.isfinite(out[0, 4]) and torch.isfinite(out[0, 2])
    out = bounds(tokens, lprobs.clone(), 2, 1, 3)  # step 3: sentence 0 is at its bound
    assert torch.isfinite(out[0]).tolist() == [False, False, True, False, False, False, False, False]
    assert torch.isfinite(out[1, 4])
    # a second 'girl' after 'the girl': only where the sentence's CTC translation says it twice
    bounds.max_tokens = [50, 50]
    bounds.ctc_tokens = [[4, 5, 5], [4, 5]]
    tokens = torch.tensor([[2, 4, 5], [2, 4, 5]])
    out = bounds(tokens, lprobs.clone(), 2, 1, 2)
    assert torch.isfinite(out[0, 5]) and out[1, 5] == -float("inf")
    assert torch.isfinite(out[1, 4])


def test_length_bound_from_training_data():
    lb = length_bound([(10, 2.0), (30, 2.92), (8, 1.6)])  # highest rate 10.27/s
    assert lb == {"tokens_per_second": 15.5, "extra": 5}
    assert max_target_tokens(3.0, 15.5, 5) == 51
    with pytest.raises(ValueError, match="no training utterance"):
        length_bound([])


@pytest.mark.parametrize("entry, message", [
    ({"tokens_per_second": -1, "extra": 5}, "tokens_per_second must be a positive number"),
    ({"tokens_per_second": 10, "extra": 0}, "extra must be an integer >= 1"),
    ({"tokens_per_second": 10}, "exactly the keys"),
    ("fast", "exactly the keys"),
])
def test_bad_length_bound_names_the_file_and_key(micro_data, tmp_path, entry, message):
    _refused(micro_data, tmp_path, "length_bound", entry, message)


def _refused(micro_data, tmp_path, key, value, message):
    """The micro data config with ``key`` set to ``value`` is refused with ``message`` and its path."""
    cfg = yaml.safe_load((micro_data / "config.yaml").read_text())
    cfg[key] = value
    cfg["global_cmvn"]["stats_npz_path"] = str(micro_data / "gcmvn.npz")
    cfg.pop("vocoder", None)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(DataConfigError, match=message) as e:
        EchoStreamDataConfig(path)
    assert str(path) in str(e.value)


@pytest.mark.parametrize("value", [-1, "high", True, float("nan"), float("inf")])
def test_bad_unit_blank_penalty_names_the_file_and_key(micro_data, tmp_path, value):
    _refused(micro_data, tmp_path, "unit_blank_penalty", value, "unit_blank_penalty must be a finite number >= 0")


def test_unit_blank_penalty_lowers_only_the_blank():
    from echostream_fairseq.decoding import unit_frames

    # frames: blank narrowly best, blank clearly best, a unit best; blank = index 0
    logits = torch.tensor([[1.0, 0.8, 0.1], [3.0, 0.5, 0.2], [0.1, 0.2, 2.0]])
    kept = logits.clone()
    assert unit_frames(logits, 0).tolist() == [0, 0, 2]
    assert unit_frames(logits, 0, 0.5).tolist() == [1, 0, 2]
    assert unit_frames(logits, 0, 10.0).tolist() == [1, 1, 2]
    assert torch.equal(logits, kept)  # the caller's logits are not changed


def test_prep_writes_the_bound(micro_data):
    lb = EchoStreamDataConfig(micro_data / "config.yaml").length_bound
    assert "length_bound" in yaml.safe_load((micro_data / "config.yaml").read_text())
    assert 5 <= lb.tokens_per_second <= 40 and lb.extra == 5


@pytest.fixture(scope="module")
def res(trained_micro, micro_data):
    from echostream_fairseq.streaming.engine import load_resources

    return load_resources(trained_micro, micro_data, vocoder=True)


def _sources(seconds=4.0):
    rng = np.random.default_rng(0)
    n = int(16000 * seconds)
    t = np.arange(n) / 16000
    return {
        "noise": (0.3 * rng.standard_normal(n)).astype(np.float32),
        "tone": (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32),  # nothing the model can read
        "silence": np.zeros(n, dtype=np.float32),
    }


@pytest.mark.parametrize("kind", ["noise", "tone", "silence"])
def test_streaming_output_is_bounded(res, kind):
    from echostream_fairseq.streaming.replay import replay

    wav = _sources()[kind]
    bound = res.length_bound.max_tokens(len(wav) / 16000)
    r = replay(res, wav, 320)
    words = r.translation.split()
    assert len(words) <= bound
    assert not [w for i, w in enumerate(words[2:], 2) if words[i - 1] == words[i - 2] == w], r.translation  # no third copy
    # speech stops with the text: at most the vocoder's longest duration per unit for the units said
    units = [u for e in r.events for u in e.out.units]
    assert r.pcm.size <= max(1, len(units)) * 320 * 60


def _offline(res, *wavs):
    """The offline generator (what fairseq-generate runs, beam 2) on a batch of 16 kHz sources."""
    from echostream_fairseq import features
    from echostream_fairseq.generator import EchoStreamGenerator

    class Args:
        beam = 2

    class Task:
        target_dictionary = res.unit_dict

        class data_cfg:
            length_bound = res.length_bound
            unit_blank_penalty = res.unit_blank_penalty

    feats = [torch.from_numpy(res.cmvn(features.fbank(w))) for w in wavs]
    lengths = torch.tensor([f.shape[0] for f in feats])
    sample = {"net_input": {"src_tokens": torch.nn.utils.rnn.pad_sequence(feats, batch_first=True), "src_lengths": lengths}}
    return EchoStreamGenerator([res.model], Task, Args).generate([res.model], sample)


def test_offline_output_is_bounded(res, micro_data):
    """The offline generator applies the same bound per sentence as fairseq-generate does."""
    from echostream_fairseq import features

    srcs = _sources(2.0)
    out = _offline(res, *srcs.values())
    for h, n in zip(out, [features.num_frames(w.size) for w in srcs.values()]):
        words = h[0]["mt_text"].split()
        assert len(words) <= res.length_bound.max_tokens(n / 100)
        assert not [w for i, w in enumerate(words[2:], 2) if words[i - 1] == words[i - 2] == w], h[0]["mt_text"]


def test_length_bound_figure_counts_outputs_over_the_bound(micro_data, tmp_path):
    """The recipe's check (results.json ``*_over_length_bound``): outputs in target pieces
    against the bound of their source's duration."""
    import soundfile as sf

    from echostream_fairseq.evaluation.recipe import length_bound_check

    wav = tmp_path / "one_second.wav"
    sf.write(wav, np.zeros(16000, dtype=np.float32), 16000)
    bound = EchoStreamDataConfig(micro_data / "config.yaml").length_bound.max_tokens(1.0)
    short, runaway = "the girl", " ".join(["the girl"] * bound)
    out = length_bound_check([short, runaway], [wav, wav], micro_data)
    assert out["over_length_bound"] == 1
    assert out["max_length_ratio"] > 1.0
    alone = length_bound_check([short], [wav], micro_data)
    assert alone["over_length_bound"] == 0 and 0.0 < alone["max_length_ratio"] < 1.0


def test_streaming_waits_instead_of_saying_a_word_again(res):
    """The engine's step: a repeat that the ST-CTC does not say is a stop decision while the
    source goes on (wait for more), and at the sentence's end the next best token."""
    from echostream_fairseq.streaming.engine import StreamingSession

    s = StreamingSession(res, speech=False)
    s.step(_sources(1.0)["noise"])
    d = res.model.mt_dict
    word = next(i for i in range(d.nspecial, len(d)) if d[i].startswith("\u2581"))
    other = next(i for i in range(word + 1, len(d)) if d[i].startswith("\u2581"))
    s.committed, s.text_states, s.st, s.mt_done = [word], [], [word, other], False
    lprobs = torch.full((len(d),), -10.0)
    lprobs[word], lprobs[other] = -0.1, -1.0
    snap = s.mt.snapshot()
    assert s._take_step(snap, lprobs.clone(), torch.zeros(1)) is False and s.committed == [word]
    s.st = [word, word]  # the ST-CTC says it twice: a repeat may stand
    assert s._take_step(snap, lprobs.clone(), torch.zeros(1)) is True and s.committed == [word, word]
    s.committed, s.st, s.finished = [word], [word, other], True
    assert s._take_step(snap, lprobs.clone(), torch.zeros(1)) is True and s.committed == [word, other]


def test_a_sentence_without_a_heard_word_has_nothing_to_translate():
    from echostream_fairseq.decoding import heard_nothing

    assert heard_nothing() and heard_nothing("", "") and heard_nothing(".", " ? ")
    assert not heard_nothing(".", "the") and not heard_nothing("hola", "")


@pytest.fixture(scope="module")
def shipped():
    from echostream_fairseq import assets
    from echostream_fairseq.streaming.engine import load_resources

    root = assets.REPO_ASSETS / "model"
    return load_resources(root / "checkpoint.pt", root, punct_model=root / "punct.pt")


def _unreadable(seconds=4.0):
    """Sources in which the shipped model hears no word; it used to say a sentence for each
    ("The hungry doctor did not sleep." for silence, "Will the sister draw the grandmother?" for
    a square wave)."""
    t = np.arange(int(16000 * seconds)) / 16000
    return {"silence": np.zeros(t.size, dtype=np.float32), "dc": np.full(t.size, 0.5, dtype=np.float32),
            "square": (0.5 * np.sign(np.sin(2 * np.pi * 440 * t))).astype(np.float32)}


@pytest.mark.parametrize("kind", ["silence", "dc", "square"])
def test_streaming_says_nothing_where_it_heard_no_word(shipped, kind):
    from echostream_fairseq.streaming.engine import PolicyConfig
    from echostream_fairseq.streaming.replay import replay

    policy = PolicyConfig(pause_ms=PolicyConfig.FLAG_PAUSE_MS, punct_delay=PolicyConfig.FLAG_PUNCT_DELAY)
    r = replay(shipped, _unreadable()[kind], 320, policy)
    assert r.translation == "" and r.pcm.size == 0, r.translation
    assert not any(c.isalnum() for c in r.transcript)


def test_offline_says_nothing_where_it_heard_no_word_and_the_rest_of_the_batch_is_untouched(shipped):
    from echostream_fairseq import assets, features

    speech = features.read_audio(assets.read_examples(assets.REPO_ASSETS)[0]["src_audio"])

    def decode(*wavs):
        return [h[0] for h in _offline(shipped, *wavs)]

    alone = decode(speech)[0]
    silent = list(_unreadable(2.0).values())
    out = decode(*silent, speech)
    for h in out[:-1]:
        assert h["mt_text"] == "" and h["units"] == [] and h["tokens"].tolist() == [shipped.unit_dict.eos()], h["mt_text"]
    assert alone["mt_text"] and out[-1]["mt_text"] == alone["mt_text"] and out[-1]["units"] == alone["units"]
    assert all(h["mt_text"] == "" for h in decode(*silent))  # a batch with nothing to say at all


def test_the_engine_refuses_samples_off_the_float_scale(shipped):
    from echostream_fairseq import features
    from echostream_fairseq.streaming.engine import StreamingSession

    s = StreamingSession(shipped)
    s.step(np.zeros(3200, dtype=np.float32))
    with pytest.raises(features.AudioError, match="session input: sample 5 "):
        s.step(np.r_[np.zeros(5), 3e20, np.zeros(10)].astype(np.float32))
