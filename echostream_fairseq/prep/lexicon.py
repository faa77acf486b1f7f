"""The concept lexicon shared by the toy grammars: every entry carries its English forms and
its Spanish and Korean forms (Korean may be missing for a concept)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, FrozenSet, List, Optional, Tuple

# ---------------------------------------------------------------------------------- nouns
# es_sg es_pl gender | en_sg en_pl | ko counter | category
_NOUNS = """
hombre hombres m | man men | 남자 명 | person
mujer mujeres f | woman women | 여자 명 | person
niño niños m | boy boys | 소년 명 | person
niña niñas f | girl girls | 소녀 명 | person
médico médicos m | doctor doctors | 의사 명 | person
maestro maestros m | teacher teachers | 선생님 명 | person
estudiante estudiantes m | student students | 학생 명 | person
amigo amigos m | friend friends | 친구 명 | person
hermano hermanos m | brother brothers | 남동생 명 | person
hermana hermanas f | sister sisters | 여동생 명 | person
abuelo abuelos m | grandfather grandfathers | 할아버지 명 | person
abuela abuelas f | grandmother grandmothers | 할머니 명 | person
cocinero cocineros m | cook cooks | 요리사 명 | person
policía policías m | police officer police officers | 경찰관 명 | person
perro perros m | dog dogs | 개 마리 | animal
gato gatos m | cat cats | 고양이 마리 | animal
caballo caballos m | horse horses | 말 마리 | animal
pájaro pájaros m | bird birds | 새 마리 | animal
vaca vacas f | cow cows | 소 마리 | animal
ratón ratones m | mouse mice | 쥐 마리 | animal
pez peces m | fish fish | 물고기 마리 | animal
conejo conejos m | rabbit rabbits | 토끼 마리 | animal
tortuga tortugas f | turtle turtles | 거북이 마리 | animal
león leones m | lion lions | 사자 마리 | animal
mono monos m | monkey monkeys | 원숭이 마리 | animal
oso osos m | bear bears | 곰 마리 | animal
pato patos m | duck ducks | 오리 마리 | animal
cerdo cerdos m | pig pigs | 돼지 마리 | animal
manzana manzanas f | apple apples | 사과 개 | food
naranja naranjas f | orange oranges | 오렌지 개 | food
pastel pasteles m | cake cakes | 케이크 개 | food
galleta galletas f | cookie cookies | 쿠키 개 | food
huevo huevos m | egg eggs | 달걀 개 | food
plátano plátanos m | banana bananas | 바나나 개 | food
tomate tomates m | tomato tomatoes | 토마토 개 | food
zanahoria zanahorias f | carrot carrots | 당근 개 | food
libro libros m | book books | 책 권 | readable
carta cartas f | letter letters | 편지 통 | readable
periódico periódicos m | newspaper newspapers | 신문 부 | readable
revista revistas f | magazine magazines | 잡지 권 | readable
mesa mesas f | table tables | 탁자 개 | furniture
silla sillas f | chair chairs | 의자 개 | furniture
cama camas f | bed beds | 침대 개 | furniture
caja cajas f | box boxes | 상자 개 | container
bolsa bolsas f | bag bags | 가방 개 | container
puerta puertas f | door doors | 문 개 | opening
ventana ventanas f | window windows | 창문 개 | opening
coche coches m | car cars | 자동차 대 | vehicle
bicicleta bicicletas f | bicycle bicycles | 자전거 대 | vehicle
llave llaves f | key keys | 열쇠 개 | object
pelota pelotas f | ball balls | 공 개 | object
vaso vasos m | glass glasses | 유리잔 개 | object
sombrero sombreros m | hat hats | 모자 개 | object
teléfono teléfonos m | phone phones | 전화기 대 | object
lápiz lápices m | pencil pencils | 연필 자루 | object
reloj relojes m | watch watches | 시계 개 | object
camisa camisas f | shirt shirts | 셔츠 벌 | object
flor flores f | flower flowers | 꽃 송이 | object
"""

# es | en prep + noun | ko (the place noun; 에서 is added)
_PLACES = """
el parque | in the park | 공원
la escuela | at the school | 학교
la playa | on the beach | 해변
la cocina | in the kitchen | 부엌
el mercado | at the market | 시장
la ciudad | in the city | 도시
el jardín | in the garden | 정원
la casa | at the house | 집
la estación | at the station | 역
el bosque | in the forest | 숲
la biblioteca | in the library | 도서관
el río | by the river | 강가
"""

# es (masc sg, optional explicit plural) | en | ko attributive | applies to
_ADJS = """
grande | big | 큰 | animal person object furniture container vehicle opening
pequeño | small | 작은 | animal person object furniture container vehicle opening food
rojo | red | 빨간 | object furniture container vehicle food
azul azules | blue | 파란 | object furniture container vehicle opening
verde | green | 초록색 | object furniture container vehicle opening food
negro | black | 검은 | animal object furniture container vehicle
blanco | white | 하얀 | animal object furniture container vehicle opening
amarillo | yellow | 노란 | object container vehicle food
nuevo | new | 새로운 | object furniture container vehicle readable
viejo | old | 오래된 | animal person object furniture container vehicle readable opening
bonito | pretty | 예쁜 | animal person object container
feliz felices | happy | 행복한 | animal person
alto | tall | 키가 큰 | person
rápido | fast | 빠른 | animal vehicle
pesado | heavy | 무거운 | object furniture container readable
sucio | dirty | 더러운 | animal object furniture container vehicle opening
limpio | clean | 깨끗한 | object furniture container vehicle opening
joven jóvenes | young | 어린 | animal person
triste | sad | 슬픈 | animal person
hambriento | hungry | 배고픈 | animal person
"""

# es: pres sg/pl, past sg/pl, fut sg/pl | en: base s3 past | ko: pres past fut ("-" = none; "하" marks a
# noun+하다 verb) | subject categories > object categories ("-" intransitive)
_VERBS = """
ve ven vio vieron verá verán | see sees saw | 봐요 봤어요 볼_거예요 | person animal > person animal food object furniture container vehicle readable opening
come comen comió comieron comerá comerán | eat eats ate | 먹어요 먹었어요 먹을_거예요 | person animal > food
compra compran compró compraron comprará comprarán | buy buys bought | 사요 샀어요 살_거예요 | person > food object furniture container vehicle readable
vende venden vendió vendieron venderá venderán | sell sells sold | 팔아요 팔았어요 팔_거예요 | person > food object furniture container vehicle readable
busca buscan buscó buscaron buscará buscarán | look_for looks_for looked_for | 찾아요 찾았어요 찾을_거예요 | person animal > person animal food object container readable
lee leen leyó leyeron leerá leerán | read reads read | 읽어요 읽었어요 읽을_거예요 | person > readable
escribe escriben escribió escribieron escribirá escribirán | write writes wrote | 써요 썼어요 쓸_거예요 | person > readable
abre abren abrió abrieron abrirá abrirán | open opens opened | 열어요 열었어요 열_거예요 | person > opening container readable
cierra cierran cerró cerraron cerrará cerrarán | close closes closed | 닫아요 닫았어요 닫을_거예요 | person > opening container readable
trae traen trajo trajeron traerá traerán | bring brings brought | 가져와요 가져왔어요 가져올_거예요 | person > food object container readable
lava lavan lavó lavaron lavará lavarán | wash washes washed | 씻어요 씻었어요 씻을_거예요 | person > animal object furniture vehicle food
rompe rompen rompió rompieron romperá romperán | break breaks broke | 깨뜨려요 깨뜨렸어요 깨뜨릴_거예요 | person animal > object furniture opening
cocina cocinan cocinó cocinaron cocinará cocinarán | cook cooks cooked | 요리해요 요리했어요 요리할_거예요 하 | person > food
pinta pintan pintó pintaron pintará pintarán | paint paints painted | 칠해요 칠했어요 칠할_거예요 하 | person > furniture vehicle opening container
dibuja dibujan dibujó dibujaron dibujará dibujarán | draw draws drew | 그려요 그렸어요 그릴_거예요 | person > person animal food object furniture vehicle
llama llaman llamó llamaron llamará llamarán | call calls called | 불러요 불렀어요 부를_거예요 | person > person animal
encuentra encuentran encontró encontraron encontrará encontrarán | find finds found | - | person animal > person animal food object container readable
lleva llevan llevó llevaron llevará llevarán | carry carries carried | 들어요 들었어요 들_거예요 | person > object container readable furniture
duerme duermen durmió durmieron dormirá dormirán | sleep sleeps slept | 자요 잤어요 잘_거예요 | person animal > -
corre corren corrió corrieron correrá correrán | run runs ran | 뛰어요 뛰었어요 뛸_거예요 | person animal > -
canta cantan cantó cantaron cantará cantarán | sing sings sang | 노래해요 노래했어요 노래할_거예요 하 | person animal > -
camina caminan caminó caminaron caminará caminarán | walk walks walked | 걸어요 걸었어요 걸을_거예요 | person animal > -
nada nadan nadó nadaron nadará nadarán | swim swims swam | 수영해요 수영했어요 수영할_거예요 하 | person animal > -
juega juegan jugó jugaron jugará jugarán | play plays played | 놀아요 놀았어요 놀_거예요 | person animal > -
llega llegan llegó llegaron llegará llegarán | arrive arrives arrived | 도착해요 도착했어요 도착할_거예요 하 | person animal > -
trabaja trabajan trabajó trabajaron trabajará trabajarán | work works worked | 일해요 일했어요 일할_거예요 하 | person > -
baila bailan bailó bailaron bailará bailarán | dance dances danced | - | person > -
llora lloran lloró lloraron llorará llorarán | cry cries cried | 울어요 울었어요 울_거예요 | person animal > -
estudia estudian estudió estudiaron estudiará estudiarán | study studies studied | 공부해요 공부했어요 공부할_거예요 하 | person > -
descansa descansan descansó descansaron descansará descansarán | rest rests rested | 쉬어요 쉬었어요 쉴_거예요 | person animal > -
"""

# es | en | ko | tenses it goes with ("neg": also in negated sentences)
_TIMES = """
hoy | today | 오늘 | present past future neg
ayer | yesterday | 어제 | past neg
anoche | last night | 어젯밤에 | past neg
mañana | tomorrow | 내일 | future neg
ahora | now | 지금 | present neg
siempre | always | 항상 | present
a_veces | sometimes | 가끔 | present
cada_día | every day | 매일 | present
"""

# verbs that take no place phrase (Korean marks their goal with 에, not the 에서 of the others)
NO_PLACE_VERBS = {"arrive"}

# value | es (masc, fem) | en | ko native numeral (attributive)
_NUMBERS = """
2 | dos dos | two | 두
3 | tres tres | three | 세
4 | cuatro cuatro | four | 네
5 | cinco cinco | five | 다섯
6 | seis seis | six | 여섯
7 | siete siete | seven | 일곱
8 | ocho ocho | eight | 여덟
9 | nueve nueve | nine | 아홉
10 | diez diez | ten | 열
"""

NAMES = [("Ana", "f"), ("Carlos", "m"), ("Pedro", "m"), ("Elena", "f"), ("Marta", "f"), ("Luis", "m"), ("Sofía", "f"), ("Diego", "m")]
# Korean spelling of each name (same English)
KO_NAMES = {"Ana": "아나", "Carlos": "카를로스", "Pedro": "페드로", "Elena": "엘레나", "Marta": "마르타", "Luis": "루이스", "Sofía": "소피아", "Diego": "디에고"}
EN_NAMES = {"Sofía": "Sofia"}


@dataclass(frozen=True)
class Noun:
    es_sg: str
    es_pl: str
    gender: str
    en_sg: str
    en_pl: str
    ko: str
    ko_counter: str
    category: str


@dataclass(frozen=True)
class Place:
    es: str  # with article
    en: str  # with preposition and article
    ko: str


@dataclass(frozen=True)
class Adj:
    es_ms: str
    es_mp: str
    es_fs: str
    es_fp: str
    en: str
    ko: str
    applies: FrozenSet[str]


@dataclass(frozen=True)
class Verb:
    es: Dict[str, Tuple[str, str]]  # tense -> (sg, pl)
    en_base: str
    en_s3: str
    en_past: str
    ko: Optional[Dict[str, str]]  # tense -> polite form
    ko_hada: bool
    subj: FrozenSet[str]
    obj: FrozenSet[str]  # empty: intransitive

    @property
    def transitive(self) -> bool:
        return bool(self.obj)


@dataclass(frozen=True)
class Time:
    es: str
    en: str
    ko: str
    tenses: FrozenSet[str]


@dataclass(frozen=True)
class Number:
    value: int
    es_m: str
    es_f: str
    en: str
    ko: str


def _rows(block: str) -> List[List[str]]:
    return [[c.strip() for c in line.split("|")] for line in block.strip().splitlines()]


def _es_adj_forms(ms: str, explicit_pl: Optional[str]) -> Tuple[str, str, str, str]:
    if ms.endswith("o"):
        return ms, ms + "s", ms[:-1] + "a", ms[:-1] + "as"
    pl = explicit_pl or (ms + "s" if ms[-1] in "aeiou" else ms + "es")
    return ms, pl, ms, pl


def _load():
    nouns = []
    for es, en, ko, cat in _rows(_NOUNS):
        sg, pl, g = es.split()
        en_words = en.split()
        half = len(en_words) // 2
        ko_word, counter = ko.split()
        nouns.append(Noun(sg, pl, g, " ".join(en_words[:half]), " ".join(en_words[half:]), ko_word, counter, cat))
    places = [Place(es, en, ko) for es, en, ko in _rows(_PLACES)]
    adjs = []
    for es, en, ko, applies in _rows(_ADJS):
        parts = es.split()
        adjs.append(Adj(*_es_adj_forms(parts[0], parts[1] if len(parts) > 1 else None), en, ko, frozenset(applies.split())))
    verbs = []
    for es, en, ko, cats in _rows(_VERBS):
        f = es.split()
        es_forms = {"present": (f[0], f[1]), "past": (f[2], f[3]), "future": (f[4], f[5])}
        base, s3, past = (w.replace("_", " ") for w in en.split())
        ko_parts = ko.split()
        ko_forms = None if ko == "-" else dict(zip(("present", "past", "future"), (w.replace("_", " ") for w in ko_parts[:3])))
        subj, obj = (c.split() for c in cats.split(">"))
        verbs.append(Verb(es_forms, base, s3, past, ko_forms, "하" in ko_parts[3:], frozenset(subj), frozenset(o for o in obj if o != "-")))
    times = [Time(es.replace("_", " "), en, ko, frozenset(t.split())) for es, en, ko, t in _rows(_TIMES)]
    numbers = []
    for value, es, en, ko in _rows(_NUMBERS):
        m, f = es.split()
        numbers.append(Number(int(value), m, f, en, ko))
    return nouns, places, adjs, verbs, times, numbers


NOUNS, PLACES, ADJS, VERBS, TIMES, NUMBERS = _load()
