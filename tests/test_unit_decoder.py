"""The CTC unit decoder's word look-ahead: which text states each token's unit slots see, and
streaming steps over complete words equal to the whole-sentence forward."""
import pytest
import torch

from echostream_fairseq.models.unit_decoder import CTCUnitDecoder, word_end_index

# tokens 0-1 form a word, 2 is a word, 3-5 a word, 6 a word (e.g. "▁s ma | ▁cook | ▁wi ll s | ▁.")
STARTS = torch.tensor([[1, 0, 1, 1, 0, 0, 1]], dtype=torch.bool)
ENDS = [1, 1, 2, 5, 5, 5, 6]


def _decoder(upsample=3):
    torch.manual_seed(0)
    return CTCUnitDecoder(dim=16, layers=2, heads=2, ffn=32, dropout=0.0, upsample=upsample, num_units=11).eval()


def test_word_end_index_finds_each_tokens_last_piece():
    assert word_end_index(STARTS, torch.tensor([7]))[0].tolist() == ENDS
    # a shorter sentence in the same batch: its last word ends at its last token, padding ignored
    two = torch.cat([STARTS, STARTS])
    assert word_end_index(two, torch.tensor([7, 5]))[1].tolist()[:5] == [1, 1, 2, 4, 4]


@torch.no_grad()
def test_a_words_first_piece_sees_the_rest_of_its_word_only():
    dec, r = _decoder(), 3
    text = torch.randn(1, 7, 16)
    changed = text.clone()
    changed[0, 4] += 1.0  # the middle piece of the word made of tokens 3-5
    n = torch.tensor([7])
    ends = torch.tensor([ENDS])
    with_ahead = dec(text, n, ends)[0], dec(changed, n, ends)[0]
    causal = dec(text, n)[0], dec(changed, n)[0]
    slots_of = lambda t: slice(t * r, (t + 1) * r)  # noqa: E731
    # token 3 (the word's first piece) hears token 4 with look-ahead, not without
    assert not torch.allclose(with_ahead[0][0, slots_of(3)], with_ahead[1][0, slots_of(3)])
    assert torch.allclose(causal[0][0, slots_of(3)], causal[1][0, slots_of(3)])
    # earlier words never hear a later word
    for t in range(3):
        assert torch.allclose(with_ahead[0][0, slots_of(t)], with_ahead[1][0, slots_of(t)])


@torch.no_grad()
def test_streaming_complete_words_equals_the_whole_sentence():
    dec, r = _decoder(), 3
    text = torch.randn(2, 7, 16)
    n = torch.tensor([7, 7])
    full = dec(text, n, torch.tensor([ENDS, ENDS]))[0]
    # stream 0 gets words as (0-1)(2-5)(6), stream 1 as (0-2)(3-5)(6): complete words each time
    splits = [[(0, 2), (2, 6), (6, 7)], [(0, 3), (3, 6), (6, 7)]]
    caches = [{}, {}]
    got = [[], []]
    for step in range(3):
        new = [text[b, a:e] for b, (a, e) in enumerate(s[step] for s in splits)]
        ends = [ENDS[a:e] for a, e in (s[step] for s in splits)]
        for b, lg in enumerate(dec.step_many(new, caches, ends)):
            got[b].append(lg)
    for b in range(2):
        assert torch.allclose(torch.cat(got[b]), full[b, : 7 * r], atol=1e-5)


def test_streaming_an_unfinished_word_is_refused():
    dec = _decoder()
    with pytest.raises(ValueError, match="word must be complete"):
        # tokens 0-3 with token 3's word ending at 5, beyond what was given
        dec.step_many([torch.randn(4, 16)], [{}], [ENDS[:4]])


@torch.no_grad()
def test_the_model_takes_word_ends_from_its_dictionary(micro_data):
    """--unit-word-lookahead: the model finds word ends from the MT dictionary's ▁ pieces, and
    asks for the tokens rather than silently decoding causally without them."""
    from conftest import build

    _, model, _, _ = build(micro_data, "--unit-word-lookahead")
    model.eval()
    d = model.mt_dict
    syms = list(enumerate(d.symbols))[d.nspecial :]
    start = next(i for i, p in syms if p.startswith("\u2581"))
    inner = next(i for i, p in syms if not p.startswith("\u2581"))
    tokens = torch.tensor([[start, inner, start, inner, inner]])  # two words: 0-1 and 2-4
    assert model.starts_word(tokens)[0].tolist() == [True, False, True, False, False]
    states = torch.randn(1, 5, model.args.decoder_embed_dim)
    with pytest.raises(ValueError, match="pass the target tokens"):
        model.units_forward(states, torch.tensor([5]))
    logits, _ = model.units_forward(states, torch.tensor([5]), tokens)
    changed = states.clone()
    changed[0, 1] += 1.0  # the word's second piece: heard by its first piece's slots
    logits2, _ = model.units_forward(changed, torch.tensor([5]), tokens)
    r = model.unit_decoder.upsample
    assert not torch.allclose(logits[0, :r], logits2[0, :r])
