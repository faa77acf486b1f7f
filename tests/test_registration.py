import importlib
import subprocess
import sys

from conftest import REPO, TRAIN_ARGS, cli, run


def test_import_twice_and_registries():
    import echostream_fairseq

    importlib.import_module("echostream_fairseq")
    from fairseq.criterions import CRITERION_REGISTRY
    from fairseq.models import ARCH_MODEL_REGISTRY, MODEL_REGISTRY
    from fairseq.tasks import TASK_REGISTRY

    assert "echostream_s2st" in TASK_REGISTRY
    assert "echostream" in MODEL_REGISTRY
    assert {"echostream_s2st", "echostream_mini"} <= set(ARCH_MODEL_REGISTRY)
    assert "echostream_multitask" in CRITERION_REGISTRY
    assert echostream_fairseq.__name__ == "echostream_fairseq"


def test_user_dir_after_package_import_registers_once():
    # fairseq's --user-dir loader after a plain import (what an agent process does): no
    # duplicate registration error, and one module identity.
    code = (
        "import echostream_fairseq, argparse\n"
        "from fairseq import utils\n"
        f"utils.import_user_module(argparse.Namespace(user_dir={str(REPO / 'echostream_fairseq')!r}))\n"
        "import sys; assert sys.modules['echostream_fairseq'] is echostream_fairseq\n"
        "print('ok')\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.strip().endswith("ok")


def test_fairseq_train_help_lists_our_components():
    # fairseq prints --help after its first parsing stage, before it adds the flags of the
    # chosen task/arch/criterion; of ours it lists the criterion among the choices. The flags
    # themselves are checked by parsing them (next test).
    p = run([cli("fairseq-train"), *TRAIN_ARGS[:8], "--help"])
    text = " ".join(p.stdout.split())
    assert "echostream_multitask" in text
    assert "--user-dir" in text and "--arch" in text


def test_our_flags_parse_through_fairseq(micro_data):
    from conftest import build

    task, model, criterion, args = build(
        micro_data, "--segment-length", 6, "--right-context-length", 1, "--unit-upsample", 7,
        "--t2u-layers", 1, "--unit-loss-weight", 0.7, "--label-smoothing", 0.2,
    )
    assert model.encoder.segment_length == 6 and model.encoder.right_context_length == 1
    assert model.unit_decoder.upsample == 7 and len(model.t2u_encoder.layers) == 1
    assert criterion.weights["unit"] == 0.7 and criterion.eps == 0.2
    assert type(task).__name__ == "EchoStreamS2STTask"
