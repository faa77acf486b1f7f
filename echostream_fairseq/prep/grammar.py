"""Bilingual toy grammars (Spanish->English, Korean->English) with an aligned derivation.

A :class:`Derivation` is sampled once (concepts from :mod:`.lexicon` plus sentence type, tense,
determiners) and realised in each language. Every realised word carries the tag of the
concept it expresses (``subj.noun``, ``verb``, ``obj.adj``, ``neg``, ...), so each sentence pair
comes with its word alignment. Word order differs for real: Spanish puts adjectives after
nouns and needs the personal "a"; Korean is verb-final with postpositions, counters after the
noun and no articles.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from . import lexicon as L

Word = Tuple[str, str]  # (surface, concept tag)
KINDS = ("decl", "neg", "q")
TENSES = ("present", "past", "future")


@dataclass(frozen=True)
class NP:
    noun: Optional[L.Noun] = None
    name: Optional[str] = None
    adj: Optional[L.Adj] = None
    det: str = "def"  # def | defpl | indef | num | name
    number: Optional[L.Number] = None

    @property
    def plural(self) -> bool:
        return self.det in ("defpl", "num")

    @property
    def gender(self) -> str:
        return dict(L.NAMES)[self.name] if self.name else self.noun.gender

    @property
    def category(self) -> str:
        return "person" if self.name else self.noun.category


@dataclass(frozen=True)
class Derivation:
    kind: str
    tense: str
    subj: NP
    verb: L.Verb
    obj: Optional[NP] = None
    place: Optional[L.Place] = None
    time: Optional[L.Time] = None

    def adj_noun_pairs(self) -> List[Tuple[str, str]]:
        return [(np.adj.en, np.noun.en_sg) for np in (self.subj, self.obj) if np is not None and np.adj and np.noun]


@dataclass
class Sentence:
    text: str
    words: List[Word]

    @property
    def tokens(self) -> List[str]:
        return [w for w, _ in self.words]


@dataclass
class Pair:
    derivation: Derivation
    src: Sentence
    tgt: Sentence

    def alignment(self) -> Dict[str, Tuple[List[int], List[int]]]:
        """concept tag -> (source word positions, target word positions)."""
        out: Dict[str, Tuple[List[int], List[int]]] = {}
        for side, sent in ((0, self.src), (1, self.tgt)):
            for i, (_, tag) in enumerate(sent.words):
                out.setdefault(tag, ([], []))[side].append(i)
        return out


def _text(words: Sequence[Word], question: bool, lang: str) -> str:
    s = " ".join(w for w, _ in words)
    s = s[0].upper() + s[1:]
    if lang == "es" and question:
        s = "¿" + s
    return s + ("?" if question else ".")


# ------------------------------------------------------------------------------- English
def _en_np(np: NP, role: str) -> List[Word]:
    if np.name:
        return [(L.EN_NAMES.get(np.name, np.name), f"{role}.noun")]
    words: List[Word] = []
    noun = np.noun.en_pl if np.plural else np.noun.en_sg
    after = ([(np.adj.en, f"{role}.adj")] if np.adj else []) + [(w, f"{role}.noun") for w in noun.split()]
    if np.det in ("def", "defpl"):
        words.append(("the", f"{role}.det"))
    elif np.det == "indef":
        words.append(("an" if after[0][0][0] in "aeio" else "a", f"{role}.det"))
    elif np.det == "num":
        words.append((np.number.en, f"{role}.num"))
    return words + after


def realise_en(d: Derivation) -> Sentence:
    v = d.verb
    sg = not d.subj.plural
    verb = lambda form: [(w, "verb") for w in form.split()]  # noqa: E731
    aux = {"present": "does" if sg else "do", "past": "did", "future": "will"}[d.tense]
    subj = _en_np(d.subj, "subj")
    obj = _en_np(d.obj, "obj") if d.obj else []
    place = [(w, "place") for w in d.place.en.split()] if d.place else []
    time = [(w, "time") for w in d.time.en.split()] if d.time else []
    if d.kind == "q":
        words = [(aux, "verb")] + subj + verb(v.en_base) + obj + place + time
    else:
        if d.kind == "neg":
            group = [(aux, "verb"), ("not", "neg")] + verb(v.en_base)
        elif d.tense == "present":
            group = verb(v.en_s3 if sg else v.en_base)
        elif d.tense == "past":
            group = verb(v.en_past)
        else:
            group = [("will", "verb")] + verb(v.en_base)
        words = time + subj + group + obj + place
    return Sentence(_text(words, d.kind == "q", "en"), words)


# ------------------------------------------------------------------------------- Spanish
def _es_np(np: NP, role: str) -> List[Word]:
    personal_a = role == "obj" and np.category == "person"
    if np.name:
        return ([("a", f"{role}.case")] if personal_a else []) + [(np.name, f"{role}.noun")]
    f = np.gender == "f"
    noun = np.noun.es_pl if np.plural else np.noun.es_sg
    adj = []
    if np.adj:
        a = np.adj
        adj = [({(False, False): a.es_ms, (False, True): a.es_mp, (True, False): a.es_fs, (True, True): a.es_fp}[(f, np.plural)], f"{role}.adj")]
    det = {
        "def": "la" if f else "el",
        "defpl": "las" if f else "los",
        "indef": "una" if f else "un",
    }.get(np.det)
    words: List[Word] = []
    if det:
        words.append((det, f"{role}.det"))
    elif np.det == "num":
        words.append((np.number.es_f if f else np.number.es_m, f"{role}.num"))
    words += [(w, f"{role}.noun") for w in noun.split()] + adj
    if personal_a:
        if words[0] == ("el", f"{role}.det"):
            words[0] = ("al", f"{role}.det")  # a + el
        else:
            words.insert(0, ("a", f"{role}.case"))
    return words


def realise_es(d: Derivation) -> Sentence:
    sg_pl = 1 if d.subj.plural else 0
    verb = [(d.verb.es[d.tense][sg_pl], "verb")]
    subj = _es_np(d.subj, "subj")
    obj = _es_np(d.obj, "obj") if d.obj else []
    place = [("en", "place")] + [(w, "place") for w in d.place.es.split()] if d.place else []
    time = [(w, "time") for w in d.time.es.split()] if d.time else []
    neg = [("no", "neg")] if d.kind == "neg" else []
    if d.kind == "q":
        words = subj + verb + obj + place + time
    else:
        words = time + subj + neg + verb + obj + place
    return Sentence(_text(words, d.kind == "q", "es"), words)


# -------------------------------------------------------------------------------- Korean
def _has_final_consonant(word: str) -> bool:
    ch = word[-1]
    return "가" <= ch <= "힣" and (ord(ch) - ord("가")) % 28 != 0


def _particle(word: str, role: str) -> str:
    if role == "subj":
        return "이" if _has_final_consonant(word) else "가"
    return "을" if _has_final_consonant(word) else "를"


def _ko_np(np: NP, role: str) -> List[Word]:
    tag = f"{role}.noun"
    if np.name:
        name = L.KO_NAMES[np.name]
        return [(name + _particle(name, role), tag)]
    words: List[Word] = [(w, f"{role}.adj") for w in np.adj.ko.split()] if np.adj else []
    n = np.noun
    if np.det in ("def", "defpl"):
        head = n.ko + ("들" if np.det == "defpl" else "")
        words.append((head + _particle(head, role), tag))
    else:
        num = "한" if np.det == "indef" else np.number.ko
        num_tag = f"{role}.det" if np.det == "indef" else f"{role}.num"
        words += [(n.ko, tag), (num, num_tag), (n.ko_counter + _particle(n.ko_counter, role), num_tag)]
    return words


def _ko_verb(d: Derivation) -> List[Word]:
    form = d.verb.ko[d.tense]
    if d.kind != "neg":
        return [(w, "verb") for w in form.split()]
    if d.verb.ko_hada:  # noun + 하다: the negation goes between noun and 하다
        i = min(form.index(c) for c in "해했할" if c in form)
        return [(form[:i], "verb"), ("안", "neg")] + [(w, "verb") for w in form[i:].split()]
    return [("안", "neg")] + [(w, "verb") for w in form.split()]


def realise_ko(d: Derivation) -> Sentence:
    time = [(w, "time") for w in d.time.ko.split()] if d.time else []
    place = [(d.place.ko + "에서", "place")] if d.place else []
    obj = _ko_np(d.obj, "obj") if d.obj else []
    words = time + _ko_np(d.subj, "subj") + place + obj + _ko_verb(d)
    return Sentence(" ".join(w for w, _ in words) + ("?" if d.kind == "q" else "."), words)


REALISERS = {"es": realise_es, "ko": realise_ko, "en": realise_en}


# ------------------------------------------------------------------------------ sampling
@dataclass
class Grammar:
    src_lang: str  # "es" or "ko"
    heldout_fraction: float = 0.1
    seed: int = 0
    heldout: frozenset = field(init=False)

    def __post_init__(self):
        if self.src_lang not in ("es", "ko"):
            raise ValueError(f"no toy grammar for source language {self.src_lang!r}")
        self.verbs = [v for v in L.VERBS if self.src_lang != "ko" or v.ko is not None]
        pairs = sorted({(a.en, n.en_sg) for a in L.ADJS for n in L.NOUNS if n.category in a.applies})
        rng = random.Random(f"heldout-{self.seed}")
        self.heldout = frozenset(rng.sample(pairs, max(1, int(len(pairs) * self.heldout_fraction))))

    def _np(self, rng: random.Random, categories, role: str, adj_p: float) -> NP:
        if "person" in categories and rng.random() < 0.2:
            return NP(name=rng.choice(L.NAMES)[0], det="name")
        noun = rng.choice([n for n in L.NOUNS if n.category in categories])
        adjs = [a for a in L.ADJS if noun.category in a.applies]
        adj = rng.choice(adjs) if adjs and rng.random() < adj_p else None
        det = rng.choices(["def", "defpl", "indef", "num"], weights=[45, 15, 20, 20])[0]
        return NP(noun=noun, adj=adj, det=det, number=rng.choice(L.NUMBERS) if det == "num" else None)

    def sample(self, rng: random.Random) -> Derivation:
        verb = rng.choice(self.verbs)
        tense = rng.choice(TENSES)
        kind = rng.choices(KINDS, weights=[60, 20, 20])[0]
        subj = self._np(rng, verb.subj, "subj", 0.4)
        obj = self._np(rng, verb.obj, "obj", 0.3) if verb.transitive else None
        place = rng.choice(L.PLACES) if rng.random() < 0.3 and verb.en_base not in L.NO_PLACE_VERBS else None
        times = [t for t in L.TIMES if tense in t.tenses and (kind != "neg" or "neg" in t.tenses)]
        time = rng.choice(times) if rng.random() < 0.35 else None
        return Derivation(kind, tense, subj, verb, obj, place, time)

    def pair(self, d: Derivation) -> Pair:
        return Pair(d, REALISERS[self.src_lang](d), realise_en(d))

    def is_heldout(self, d: Derivation) -> bool:
        return any(p in self.heldout for p in d.adj_noun_pairs())


def source_vocabulary(src_lang: str) -> set:
    """Every source word form the grammar can produce (for the vocabulary-size check)."""
    words = set()
    if src_lang == "es":
        for n in L.NOUNS:
            words |= set(n.es_sg.split()) | set(n.es_pl.split())
        for a in L.ADJS:
            words |= {a.es_ms, a.es_mp, a.es_fs, a.es_fp}
        for v in L.VERBS:
            for sg, pl in v.es.values():
                words |= {sg, pl}
        for t in L.TIMES:
            words |= set(t.es.split())
        for num in L.NUMBERS:
            words |= {num.es_m, num.es_f}
        for p in L.PLACES:
            words |= set(p.es.split())
        words |= {n for n, _ in L.NAMES} | {"el", "la", "los", "las", "un", "una", "a", "al", "no", "en"}
    else:
        for n in L.NOUNS:
            words |= {n.ko, n.ko_counter}
        for a in L.ADJS:
            words |= set(a.ko.split())
        for v in L.VERBS:
            if v.ko:
                for form in v.ko.values():
                    words |= set(form.split())
        for t in L.TIMES:
            words |= set(t.ko.split())
        words |= {num.ko for num in L.NUMBERS} | {p.ko for p in L.PLACES} | set(L.KO_NAMES.values()) | {"한", "안"}
    return words
