"""--config FILE: the YAML settings of configs/, overridden by flags; bad files are named errors."""
import subprocess

import pytest

from conftest import REPO, cli
from echostream_fairseq.cli.serve import build_parser
from echostream_fairseq.config import parse_args

SHIPPED = REPO / "configs" / "echostream_config.yaml"


def _parse(tmp_path, text, *flags):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    return parse_args(build_parser(), ["--config", str(cfg), *flags]), cfg


def _error(tmp_path, capsys, text):
    with pytest.raises(SystemExit) as e:
        _parse(tmp_path, text)
    assert e.value.code == 2
    return capsys.readouterr().err


def test_the_file_sets_defaults_and_flags_override_it(tmp_path):
    text = ("policy:\n  lag_k: 2\n  whole_word: false\n  pause_ms: null\n  punct_delay: 3\n"
            "server:\n  max_sessions: 7\n  max_batch: 1\n")
    args, _ = _parse(tmp_path, text)
    assert (args.lag_k, args.no_whole_word, args.no_pause, args.punct_delay, args.max_sessions, args.max_batch) == (2, True, True, 3, 7, 1)
    args, _ = _parse(tmp_path, text, "--lag-k", "4", "--max-sessions", "2")
    assert (args.lag_k, args.max_sessions, args.no_pause) == (4, 2, True)  # flags win, the rest stays the file's
    assert parse_args(build_parser(), []).lag_k is None  # no file: not given (PolicyConfig fills in the default)


def test_the_shipped_config_holds_the_defaults():
    from echostream_fairseq.streaming.policy import PolicyConfig

    with_file = parse_args(build_parser(), ["--config", str(SHIPPED)])
    without = parse_args(build_parser(), [])
    # the policy flags parse to None ("not given"); the file's values are what they default to
    assert PolicyConfig.from_args(with_file, True) == PolicyConfig.from_args(without, True)
    policy = {d for dests in PolicyConfig._SETTINGS.values() for d in dests} | {"config", "config_values", "assets"}
    differ = {k for k in vars(without) if getattr(with_file, k) != getattr(without, k)} - policy
    assert differ == set(), differ
    # gating is the model's own (its folder's policy.yaml): the shipped file does not override it
    assert not {"lag_k", "stride_n", "no_whole_word"} & set(with_file.config_values)


def test_an_unknown_key_names_the_file_the_key_and_the_allowed_ones(tmp_path, capsys):
    err = _error(tmp_path, capsys, "policy:\n  lag: 1\n")
    assert "c.yaml" in err and "'policy.lag'" in err and "did you mean lag_k" in err and "allowed:" in err


def test_an_unknown_section_is_named(tmp_path, capsys):
    err = _error(tmp_path, capsys, "polcy:\n  lag_k: 1\n")
    assert "unknown section 'polcy'" in err and "model, policy, server" in err


@pytest.mark.parametrize("text,expected", [
    ("server:\n  max_sessions: four\n", "server.max_sessions: expected an integer, got 'four'"),
    ("server:\n  max_sessions: 2.5\n", "server.max_sessions: expected an integer, got 2.5"),
    ("policy:\n  whole_word: maybe\n", "policy.whole_word: expected true or false, got 'maybe'"),
    ("policy:\n  silence_db: [1, 2]\n", "policy.silence_db: expected a number"),
    ("model:\n  checkpoint: /no/such/checkpoint.pt\n", "model.checkpoint: no such file or folder: /no/such/checkpoint.pt"),
    ("- just\n- a list\n", "expected sections"),
    ("policy: [\n", "not valid YAML"),
])
def test_a_bad_value_is_named(tmp_path, capsys, text, expected):
    err = _error(tmp_path, capsys, text)
    assert "c.yaml" in err and expected in err, err


def test_a_missing_config_file_is_named(capsys):
    with pytest.raises(SystemExit):
        parse_args(build_parser(), ["--config", "/no/such.yaml"])
    assert "/no/such.yaml: no such file" in capsys.readouterr().err


@pytest.mark.slow
def test_serve_runs_from_the_shipped_config_and_shows_the_effective_values(tmp_path):
    from test_server import get, start_server

    p, base, _, _ = start_server(tmp_path / "serve.log", "--config", SHIPPED, "--lag-k", "2", "--log-level", "warning")
    try:
        cfg = get(base + "/config")
        assert cfg["policy"]["lag_k"] == 2  # the flag
        assert cfg["policy"]["pause_ms"] == 600 and cfg["policy"]["punct_delay"] == 2  # the file
        assert cfg["limits"]["max_batch"] == 16 and cfg["model"]["config"] == str(SHIPPED)
    finally:
        p.terminate()
        p.wait(timeout=30)


def test_translate_reads_the_model_and_policy_sections(tmp_path):
    """echostream-translate takes the same file (its server section is the server's)."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(SHIPPED.read_text().replace("silence_db: -45.0", "silence_db: nope"))
    r = subprocess.run([cli("echostream-translate"), "in.wav", "out.wav", "--config", cfg], capture_output=True, text=True)
    assert r.returncode == 2 and "policy.silence_db: expected a number, got 'nope'" in r.stderr


def _train(*args):
    return subprocess.run([cli("echostream-train"), *map(str, args)], capture_output=True, text=True, cwd=REPO)


def test_training_config_builds_the_fairseq_train_command(micro_data):
    r = _train("--config", REPO / "configs" / "train_mini.yaml", "--dry-run", micro_data, "--lr", "5e-4")
    assert r.returncode == 0, r.stderr
    cmd = r.stdout.split()
    assert cmd[0] == "fairseq-train" and "--arch" in cmd and cmd[cmd.index("--arch") + 1] == "echostream_mini"
    assert cmd.index("--num-workers") < cmd.index("--lr", cmd.index(str(micro_data)))  # the flag comes last: it wins
    r = _train("--config", REPO / "configs" / "train_paper_cvss_fr_en.yaml", "--dry-run", micro_data)
    assert r.returncode == 0 and "echostream_s2st" in r.stdout, r.stderr


@pytest.mark.parametrize("line,expected", [
    ("max_tokenz: 100", "train.max_tokenz: fairseq-train has no --max-tokenz (did you mean --max-tokens"),
    ("max_tokens: lots", "train.max_tokens: invalid int value: 'lots'"),
    ("lr_scheduler: sometimes", "train.lr_scheduler: invalid choice: 'sometimes'"),
])
def test_a_bad_training_config_names_the_key(tmp_path, micro_data, line, expected):
    cfg = tmp_path / "t.yaml"
    cfg.write_text((REPO / "configs" / "train_mini.yaml").read_text() + f"  {line}\n")
    r = _train("--config", cfg, "--dry-run", micro_data)
    assert r.returncode == 2 and str(cfg) in r.stderr and expected in r.stderr, r.stderr


@pytest.mark.slow
def test_echostream_train_trains_from_the_mini_config(micro_data, tmp_path):
    r = _train("--config", REPO / "configs" / "train_mini.yaml", micro_data, "--config-yaml", "config.yaml",
               "--max-update", "1", "--save-dir", tmp_path / "ckpt", "--disable-validation", "--no-epoch-checkpoints")
    assert r.returncode == 0, r.stderr[-3000:]
    last = tmp_path / "ckpt" / "checkpoint_last.pt"
    assert last.is_file()
    assert "done training" in (r.stdout + r.stderr)
    # the same command again: the run is at --max-update already, and stays exactly as it is
    before = last.read_bytes()
    again = _train("--config", REPO / "configs" / "train_mini.yaml", micro_data, "--config-yaml", "config.yaml",
                   "--max-update", "1", "--save-dir", tmp_path / "ckpt", "--disable-validation", "--no-epoch-checkpoints")
    assert again.returncode == 0 and "is at 1 updates (--max-update 1): nothing to train" in again.stdout, again.stderr[-3000:]
    assert last.read_bytes() == before
    from echostream_fairseq.cli.train import trained_updates
    more = _train("--config", REPO / "configs" / "train_mini.yaml", micro_data, "--config-yaml", "config.yaml",
                  "--max-update", "2", "--save-dir", tmp_path / "ckpt", "--disable-validation", "--no-epoch-checkpoints")
    assert more.returncode == 0 and trained_updates(tmp_path / "ckpt") == 2, more.stderr[-3000:]


def test_a_model_folders_policy_sits_between_the_defaults_and_the_config(tmp_path):
    """class defaults < the model folder's policy.yaml < --config < flags, setting by setting."""
    from echostream_fairseq.config import ConfigError
    from echostream_fairseq.streaming.policy import PolicyConfig

    model = tmp_path / "model"
    model.mkdir()
    (model / PolicyConfig.MODEL_FILE).write_text("policy:\n  lag_k: 3\n  whole_word: false\n  pause_ms: null\n")

    def policy(text="", *flags, model_dir=model):
        return PolicyConfig.from_args(_parse(tmp_path, text, *flags)[0], True, model_dir)

    p = policy()
    assert (p.lag_k, p.whole_word, p.pause_ms, p.punct_delay) == (3, False, None, PolicyConfig.FLAG_PUNCT_DELAY)
    assert policy(model_dir=None).lag_k == PolicyConfig.lag_k and policy(model_dir=tmp_path / "none").lag_k == 1
    p = policy("policy:\n  lag_k: 2\n  pause_ms: 700\n")
    assert (p.lag_k, p.whole_word, p.pause_ms) == (2, False, 700)  # the config file wins where it speaks
    p = policy("policy:\n  lag_k: 2\n", "--lag-k", "0", "--pause-ms", "500")
    assert (p.lag_k, p.pause_ms) == (0, 500)  # flags win over both (--pause-ms over the model's 'off')
    assert policy("", "--no-pause").pause_ms is None and policy("", "--no-whole-word").whole_word is False
    (model / PolicyConfig.MODEL_FILE).write_text("policy:\n  lag: 3\n")
    with pytest.raises(ConfigError, match=r"model/policy.yaml: unknown key 'policy.lag'; did you mean lag_k"):
        policy()
    (model / PolicyConfig.MODEL_FILE).write_text("server:\n  max_sessions: 2\n")
    with pytest.raises(ConfigError, match=r"model/policy.yaml: a model's policy file holds one section"):
        policy()
    (model / PolicyConfig.MODEL_FILE).write_text("policy:\n  lag_k: null\n")
    with pytest.raises(ConfigError, match=r"policy.lag_k: expected an integer, got None"):
        policy()
