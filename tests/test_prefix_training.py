"""Prefix training (``--prefix-train-prob``): the MT decoder learns from the source prefixes
that streaming gives each target token."""
import torch

from conftest import build
from echostream_fairseq.models.echostream import streaming_prefix_frames


def test_prefix_frames_follow_the_st_ctc_count_on_the_chunk_grid():
    blank = 0
    greedy = torch.tensor([[0, 5, 5, 0, 6, 0, 0, 7, 7, 0, 0, 0],   # tokens counted at frames 1, 4, 7
                           [0, 3, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0]])  # at 1 and 3; 6 real frames
    limits = streaming_prefix_frames(greedy, lengths=torch.tensor([12, 6]), text_lengths=torch.tensor([3, 3]),
                                     positions=5, blank=blank, chunk=4, phase=torch.tensor([0, 1]))
    # utterance 0, chunks end at 4, 8, 12: token 1 counted in the first chunk, tokens 2 and 3 in the
    # second; position 3 (end of sentence) and the padding position see everything
    assert limits[0].tolist() == [4, 8, 8, 12, 12]
    # utterance 1, chunks end at 3, 7, ...: a repeated label counts once, the third token never
    # comes (the end of the stream: the whole source), and nothing passes the real length
    assert limits[1].tolist() == [3, 6, 6, 6, 6]


def _forward_states(model, sample, prob):
    model.args.prefix_train_prob = prob
    torch.manual_seed(0)
    net = sample["net_input"]
    mt = sample["multitask"]["target_unigram"]
    enc = model.encoder(net["src_tokens"], net["src_lengths"])
    limits = model.streaming_frame_limits(enc, mt["net_input"]["prev_output_tokens"], mt["target_lengths"] - 1)
    _, states = model.mt_forward(mt["net_input"]["prev_output_tokens"], enc, frame_limits=limits)
    return enc, limits, states


def test_training_decoder_sees_only_its_streaming_prefix(data_copy):
    task, model, _, _ = build(data_copy, "--dropout", "0", "--attention-dropout", "0", "--activation-dropout", "0")
    task.load_dataset("train")
    ds = task.datasets["train"]
    sample = ds.collater([ds[i] for i in range(4)])
    model.train()
    enc, limits, states = _forward_states(model, sample, 1.0)
    assert limits is not None
    S = enc["encoder_out"][0].size(0)
    assert (limits < S).any(), "some position must see less than the whole source"

    # a position's state does not depend on frames past its limit ...
    mt = sample["multitask"]["target_unigram"]
    b, t = [int(i) for i in (limits < S).nonzero()[0]]
    enc["encoder_out"][0][limits[b, t]:, b] += 3.0
    _, again = model.mt_forward(mt["net_input"]["prev_output_tokens"], enc, frame_limits=limits)
    assert torch.allclose(states[b, : t + 1], again[b, : t + 1], atol=1e-5)
    # ... while the whole-source decoder's does
    _, full = model.mt_forward(mt["net_input"]["prev_output_tokens"], enc)
    assert not torch.allclose(full[b, t], again[b, t], atol=1e-3)

    # whole-source limits are fairseq's own decoder, exactly
    whole = enc["src_lengths"][0][:, None].expand_as(limits)
    _, limited = model.mt_forward(mt["net_input"]["prev_output_tokens"], enc, frame_limits=whole)
    assert torch.allclose(limited, full, atol=1e-5)
    assert "forward" not in vars(model.mt_decoder.layers[0].encoder_attn)  # the override is gone


def test_no_prefix_training_by_default_nor_in_evaluation(data_copy):
    task, model, _, _ = build(data_copy)
    task.load_dataset("train")
    ds = task.datasets["train"]
    sample = ds.collater([ds[i] for i in range(2)])
    model.train()
    assert _forward_states(model, sample, 0.0)[1] is None
    model.eval()
    assert _forward_states(model, sample, 1.0)[1] is None
