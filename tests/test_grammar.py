"""The toy grammars: every English target is a correct translation under the grammar's own
aligned derivation, checked against the lexicon and English/Spanish/Korean grammar rules."""
import random
import unicodedata

import pytest

from echostream_fairseq.prep import lexicon as L
from echostream_fairseq.prep.grammar import Grammar, source_vocabulary

CONTENT = ("noun", "adj", "num")


def _pairs(lang, n=400, seed=3):
    g = Grammar(lang, seed=seed)
    rng = random.Random(seed)
    return [g.pair(g.sample(rng)) for _ in range(n)]


def _words(sent, tag):
    return [w for w, t in sent.words if t == tag]


def _ko_final_consonant(syllable: str) -> bool:
    # independent of the generator: decompose the Hangul syllable into jamo
    return len(unicodedata.normalize("NFD", syllable)) == 3


@pytest.mark.parametrize("lang", ["es", "ko"])
def test_vocabulary_and_lengths(lang):
    assert len(source_vocabulary(lang)) >= 150
    concepts = len(L.NOUNS) + len(L.ADJS) + len([v for v in L.VERBS if lang == "es" or v.ko]) + len(L.PLACES) + len(L.TIMES) + len(L.NUMBERS) + len(L.NAMES)
    assert concepts >= 140


@pytest.mark.parametrize("lang", ["es", "ko"])
def test_alignment_covers_every_content_concept_on_both_sides(lang):
    for p in _pairs(lang):
        d = p.derivation
        al = p.alignment()
        roles = ["subj"] + (["obj"] if d.obj else [])
        for role in roles:
            np_ = getattr(d, role)
            tags = [f"{role}.noun"] + ([f"{role}.adj"] if np_.adj else []) + ([f"{role}.num"] if np_.det == "num" else [])
            for tag in tags:
                src, tgt = al[tag]
                assert src and tgt, (tag, p.src.text, p.tgt.text)
        for tag, present in (("verb", True), ("neg", d.kind == "neg"), ("time", d.time), ("place", d.place)):
            if present:
                assert all(al[tag]), (tag, p.src.text, p.tgt.text)
            else:
                assert tag not in al


@pytest.mark.parametrize("lang", ["es", "ko"])
def test_english_is_a_correct_translation_of_the_derivation(lang):
    for p in _pairs(lang):
        d, en = p.derivation, p.tgt
        text = en.text
        assert text[0].isupper() and text.endswith("?" if d.kind == "q" else ".")
        for role in ("subj", "obj"):
            np_ = getattr(d, role)
            if np_ is None:
                continue
            noun = " ".join(_words(en, f"{role}.noun"))
            if np_.name:
                assert noun == L.EN_NAMES.get(np_.name, np_.name)
                continue
            assert noun == (np_.noun.en_pl if np_.plural else np_.noun.en_sg), text
            if np_.adj:
                assert _words(en, f"{role}.adj") == [np_.adj.en]
                # English: adjective right before the noun
                tags = [t for _, t in en.words]
                assert tags.index(f"{role}.adj") + 1 == tags.index(f"{role}.noun")
            det = _words(en, f"{role}.det")
            if np_.det == "indef":
                nxt = en.words[[t for _, t in en.words].index(f"{role}.det") + 1][0]
                assert det == (["an"] if nxt[0] in "aeiou" else ["a"]), text
            elif np_.det in ("def", "defpl"):
                assert det == ["the"]
            elif np_.det == "num":
                assert _words(en, f"{role}.num") == [np_.number.en] and np_.number.value > 1
        verb = _words(en, "verb")
        v, sg = d.verb, not d.subj.plural
        aux = {"present": "does" if sg else "do", "past": "did", "future": "will"}[d.tense]
        if d.kind == "q":
            assert en.words[0][0] == aux and verb == [aux] + v.en_base.split()
        elif d.kind == "neg":
            assert verb == [aux] + v.en_base.split() and _words(en, "neg") == ["not"]
        elif d.tense == "present":
            assert verb == (v.en_s3 if sg else v.en_base).split(), text  # subject-verb agreement
        elif d.tense == "past":
            assert verb == v.en_past.split()
        else:
            assert verb == ["will"] + v.en_base.split()
        if d.time:
            assert d.tense in d.time.tenses


def test_spanish_order_and_agreement():
    for p in _pairs("es"):
        d, es = p.derivation, p.src
        tags = [t for _, t in es.words]
        for role in ("subj", "obj"):
            np_ = getattr(d, role)
            if np_ is None or np_.name:
                continue
            if np_.adj:  # noun-adjective order
                assert tags.index(f"{role}.adj") > max(i for i, t in enumerate(tags) if t == f"{role}.noun")
            det = _words(es, f"{role}.det")
            if det and det[0] != "al":
                fem = det[0] in ("la", "las", "una")
                assert fem == (np_.noun.gender == "f"), p.src.text
        if d.obj is not None and d.obj.category == "person":
            assert any(w in ("a", "al") for w in _words(es, "obj.case") + _words(es, "obj.det")), p.src.text
        assert _words(es, "verb") == [d.verb.es[d.tense][1 if d.subj.plural else 0]]


def test_korean_is_verb_final_with_correct_particles():
    for p in _pairs("ko"):
        d, ko = p.derivation, p.src
        assert ko.words[-1][1] == "verb" and ko.text.endswith("?" if d.kind == "q" else ".")
        # the particle goes on the last word of the noun phrase
        subj_last = [w for w, t in ko.words if t.startswith("subj.")][-1]
        stem, particle = subj_last[:-1], subj_last[-1]
        assert particle == ("이" if _ko_final_consonant(stem[-1]) else "가"), ko.text
        if d.obj is not None:
            obj_last = [w for w, t in ko.words if t.startswith("obj.")][-1]
            stem, particle = obj_last[:-1], obj_last[-1]
            assert particle == ("을" if _ko_final_consonant(stem[-1]) else "를"), ko.text
            # object before verb (SOV)
            tags = [t for _, t in ko.words]
            assert max(i for i, t in enumerate(tags) if t.startswith("obj.")) < tags.index("verb")
