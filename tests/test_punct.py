"""The streaming punctuation / sentence-boundary model: its look-ahead is exactly the delay asked
for, streaming decisions equal whole-sequence ones, the trainer CLI, the shipped model on
held-out text, and recomposition."""
import subprocess

import pytest
import sentencepiece as spm
import torch
from fairseq.data import Dictionary

from conftest import cli, run
from echostream_fairseq import assets, punct
from echostream_fairseq.prep import longform

MODEL = assets.REPO_ASSETS / "model"


def _net(max_delay=4, window=32):
    torch.manual_seed(0)
    return punct.CTTransformer(50, punct.PunctConfig(dim=32, layers=2, heads=2, ffn=64, window=window, max_delay=max_delay)).eval()


@pytest.mark.parametrize("delay", [0, 1, 3])
def test_a_mark_depends_on_exactly_delay_tokens_ahead(delay):
    net = _net()
    ids = torch.randint(4, 50, (1, 20))
    base = net(ids, delay)[0]
    for i in range(0, 20 - delay - 1):
        changed = ids.clone()
        changed[0, i + delay + 1:] = (changed[0, i + delay + 1:] + 7) % 46 + 4  # everything beyond the look-ahead
        assert torch.allclose(net(changed, delay)[0, i], base[i], atol=1e-5), i
        within = ids.clone()
        within[0, i + delay] = (within[0, i + delay] + 7) % 46 + 4  # the last token it may see
        assert not torch.allclose(net(within, delay)[0, i], base[i], atol=1e-5), i


def test_streaming_decisions_equal_the_whole_sequence():
    net = _net(window=64)
    model = punct.PunctModel(net, [f"w{i}" for i in range(50)], {})
    ids = torch.randint(4, 50, (40,)).tolist()
    for delay in (0, 2):
        whole = net(torch.tensor([ids]), delay)[0].argmax(-1).tolist()
        t = model.tracker(delay)
        got = {}
        for n, tok in enumerate(ids):
            for ref, mark in t.push([(tok, n)]):
                assert n - ref == delay  # decided exactly `delay` tokens later
                got[ref] = mark
        for ref, mark in t.flush_all():
            got[ref] = mark
        assert [got[n] for n in range(len(ids))] == whole


def test_train_cli_writes_a_model_for_the_asr_dictionary(tmp_path):
    from echostream_fairseq.prep.corpus import grammar_sentences

    pairs = grammar_sentences("es", {"train": 300, "dev": 40, "test": 0}, seed=5)
    train, dev = tmp_path / "train.es", tmp_path / "dev.es"
    train.write_text("\n".join(s for s, _ in pairs["train"]) + "\n")
    dev.write_text("\n".join(s for s, _ in pairs["dev"]) + "\n")
    out = tmp_path / "punct.pt"
    p = run([cli("echostream-train-punct"), "--train-text", train, "--valid-text", dev, "--spm", MODEL / "spm_src.model",
             "--dict", MODEL / "dict_src.txt", "--out", out, "--steps", "60", "--dim", "32", "--ffn", "64", "--max-delay", "2",
             "--no-progress-bar", "--threads", "1"])
    assert "valid boundary F1 at delay 2" in p.stderr
    m = punct.PunctModel.load(out)
    assert m.net.cfg.max_delay == 2 and m.openers == {"?": "¿"}
    m.check_dictionary(Dictionary.load(str(MODEL / "dict_src.txt")))
    with pytest.raises(ValueError, match="another vocabulary"):
        m.check_dictionary(Dictionary.load(str(MODEL / "dict_tgt.txt")))
    with pytest.raises(ValueError, match="delay must be in 0..2"):
        m.tracker(3)


def test_train_cli_names_bad_input(tmp_path):
    missing = tmp_path / "nope.es"
    p = subprocess.run([cli("echostream-train-punct"), "--train-text", missing, "--spm", MODEL / "spm_src.model",
                        "--dict", MODEL / "dict_src.txt", "--out", tmp_path / "p.pt"], capture_output=True, text=True)
    assert p.returncode != 0 and str(missing) in p.stderr and not (tmp_path / "p.pt").exists()
    tsv = tmp_path / "list.tsv"
    tsv.write_text("id\tsrc_text\na\tHola.\nb\n")
    p = subprocess.run([cli("echostream-train-punct"), "--train-text", tsv, "--column", "src_text", "--spm", MODEL / "spm_src.model",
                        "--dict", MODEL / "dict_src.txt", "--out", tmp_path / "p.pt"], capture_output=True, text=True)
    assert p.returncode != 0 and f"{tsv}: line 3" in p.stderr
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=str(bad)):
        punct.PunctModel.load(bad)


def _held_out_text():
    """Ids and gold marks of the held-out long-form sentences laid end to end, as the ASR would spell them."""
    sp = spm.SentencePieceProcessor(model_file=str(MODEL / "spm_src.model"))
    d = Dictionary.load(str(MODEL / "dict_src.txt"))
    rows = [r for rows in longform.read_sentences(assets.REPO_ASSETS / "longform").values() for r in rows]
    sents = punct.encode_lines([r["src_text"] for r in rows], sp, d)
    return [i for s in sents for i in s[0]], [m_ for s in sents for m_ in s[1]]


def test_shipped_model_finds_sentence_ends_in_held_out_text():
    m = punct.PunctModel.load(MODEL / "punct.pt")
    ids, gold = _held_out_text()
    f1 = {delay: punct.boundary_f1(m.predict(ids, delay), gold)["f1"] for delay in (0, 2)}
    assert f1[2] >= 0.8, f1  # measured 0.87 (0.96 on 20 dev streams)
    assert f1[2] > f1[0], f1  # look-ahead is what finds the ends (the next sentence's first words)


def test_an_fp16_copy_is_half_the_size_and_marks_as_the_original(tmp_path):
    """What the asset export writes with --model-fp16: half-precision weights, computed in fp32 once loaded."""
    m = punct.PunctModel.load(MODEL / "punct.pt")
    m.save(tmp_path / "fp32.pt")
    m.save(tmp_path / "fp16.pt", fp16=True)
    weights = torch.load(tmp_path / "fp16.pt", weights_only=True)["model"]
    assert {v.dtype for v in weights.values()} == {torch.float16}
    assert (tmp_path / "fp16.pt").stat().st_size < 0.6 * (tmp_path / "fp32.pt").stat().st_size
    half = punct.PunctModel.load(tmp_path / "fp16.pt")
    assert next(half.net.parameters()).dtype == torch.float32
    assert half.symbols == m.symbols and half.openers == m.openers and half.meta == m.meta
    ids, _ = _held_out_text()
    for delay in (0, 2):
        a, b = m.predict(ids, delay), half.predict(ids, delay)
        assert sum(x != y for x, y in zip(a, b)) <= 0.01 * len(ids), delay


def test_recompose():
    assert punct.recompose("la hermana dibuja el pez", punct.MARKS.index("?"), {"?": "¿"}) == "¿La hermana dibuja el pez?"
    assert punct.recompose("¿la hermana dibuja el pez.", punct.MARKS.index("?"), {"?": "¿"}) == "¿La hermana dibuja el pez?"
    assert punct.recompose("the sister draws the fish?", punct.MARKS.index("."), {}) == "The sister draws the fish."
    assert punct.recompose("did the sister draw the fish?", punct.MARKS.index("."), {}, keep_own=True) == "Did the sister draw the fish?"
    assert punct.recompose("  ", 2, {}) == ""
