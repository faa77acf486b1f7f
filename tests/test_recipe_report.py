"""The recipe's report: a further language pair's figures go under ``pairs`` in results.json,
beside the default pair's, and neither report loses the other's."""
import json
import subprocess

import pytest

from conftest import cli
from echostream_fairseq.evaluation.recipe import report


def _eval_dir(tmp_path, name, bleu):
    d = tmp_path / name
    d.mkdir()
    (d / "offline.json").write_text(json.dumps({"offline_bleu": bleu, "utterances": 3}))
    return d


@pytest.fixture
def corpus_list(tmp_path):
    p = tmp_path / "test.tsv"
    p.write_text("id\tsrc_audio\ttgt_audio\tsrc_text\ttgt_text\nx-0\ta.wav\tb.wav\tuno\tone\n")
    return p


def test_a_pair_report_sits_beside_the_default_one(tmp_path, corpus_list):
    out = tmp_path / "results.json"
    report(_eval_dir(tmp_path, "es", 70.0), corpus_list, [], out, "es run")
    report(_eval_dir(tmp_path, "ko", 61.5), corpus_list, [], out, "ko run", pair="ko-en")
    got = json.loads(out.read_text())
    assert got["results"] == {"offline_bleu": 70.0} and got["command"] == "es run"
    assert got["pairs"]["ko-en"]["results"] == {"offline_bleu": 61.5} and got["pairs"]["ko-en"]["command"] == "ko run"
    # the default pair measured again: its figures change, the pair's stay
    report(_eval_dir(tmp_path, "es2", 71.0), corpus_list, [], out, "es run 2")
    got = json.loads(out.read_text())
    assert got["results"] == {"offline_bleu": 71.0} and got["pairs"]["ko-en"]["results"] == {"offline_bleu": 61.5}
    # each report says which CPU made it (ASR-BLEU moves with the CPU's kernels)
    on = got["measured_on"]
    cpuinfo = open("/proc/cpuinfo").read()
    assert on["cores"] >= 1 and on["cpu"] in cpuinfo and on["torch"]
    assert on["isa"] == [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f" {f} " in cpuinfo.replace("\n", " ")]
    assert got["pairs"]["ko-en"]["measured_on"] == on
    # a second pair joins the first
    report(_eval_dir(tmp_path, "xx", 12.0), corpus_list, [], out, "xx run", pair="xx-en")
    assert set(json.loads(out.read_text())["pairs"]) == {"ko-en", "xx-en"}


def test_a_damaged_results_file_is_named_not_overwritten(tmp_path, corpus_list):
    out = tmp_path / "results.json"
    out.write_text("{not json")
    r = subprocess.run([cli("echostream-score"), "report", "--eval-dir", str(_eval_dir(tmp_path, "ko", 61.5)), "--list", str(corpus_list),
                        "--segments", "320", "--out", str(out), "--command", "ko run", "--pair", "ko-en"], capture_output=True, text=True)
    assert r.returncode != 0 and str(out) in r.stderr and "not JSON" in r.stderr
    assert out.read_text() == "{not json"


def test_an_export_keeps_only_the_figures_it_leaves_valid(tmp_path):
    from echostream_fairseq import assets

    root = tmp_path / "assets"
    root.mkdir()
    assert assets.results_kept(root, "ko-en", default=False) is None  # no results.json yet
    both = {"results": {"offline_bleu": 70.0}, "command": "es run", "pairs": {"ko-en": {"results": {"offline_bleu": 61.5}}}}
    assets.write_json(root / assets.RESULTS, both)
    # re-exporting the default pair: its own figures go, the further pairs' stay
    assert assets.results_kept(root, None, default=True) == {"pairs": both["pairs"]}
    # re-exporting ko-en: its entry goes, the default pair's figures stay
    assert assets.results_kept(root, "ko-en", default=False) == {"results": {"offline_bleu": 70.0}, "command": "es run"}
    assets.write_json(root / assets.RESULTS, {"results": {"offline_bleu": 70.0}})
    assert assets.results_kept(root, None, default=True) is None
    (root / assets.RESULTS).write_text("{oops")
    with pytest.raises(ValueError, match="results.json: not JSON"):
        assets.results_kept(root, "ko-en", default=False)
