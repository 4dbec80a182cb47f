"""``patentmatch train vocab|mlm|sbert|evaluate|all``: the recipe from the command line.

Every :class:`training.config.TrainConfig` setting is an option (``vocab_size`` is
``--vocab-size``). The first command of a run writes ``config.json`` into
``--output-dir``; later commands read it and apply only the options given again.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path

from training.config import TrainConfig, config_fields

logger = logging.getLogger(__name__)

_TYPES = {"int": int, "float": float, "str": str, "Path": Path}


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("run settings (stored in OUTPUT_DIR/config.json)")
    for item in config_fields():
        flag = "--" + item.name.replace("_", "-")
        help_text = item.metadata.get("help", "")
        default = item.default if item.default is not dataclasses.MISSING else "bundled dev sets"
        type_name = str(item.type).replace(" | None", "")
        if type_name == "bool":
            group.add_argument(flag, action=argparse.BooleanOptionalAction,
                               default=argparse.SUPPRESS,
                               help=f"{help_text} (default: {default})")
        elif type_name.startswith("list["):
            group.add_argument(flag, nargs="+", type=Path, default=argparse.SUPPRESS,
                               metavar="FILE", help=f"{help_text}")
        else:
            group.add_argument(flag, type=_TYPES[type_name], default=argparse.SUPPRESS,
                               help=f"{help_text} (default: {default})")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Load the run's ``config.json`` (or the defaults) and apply the options given."""
    names = {item.name for item in config_fields()}
    given = {name: value for name, value in vars(args).items() if name in names}
    output_dir = Path(given.get("output_dir", TrainConfig.output_dir))
    if (output_dir / "config.json").is_file():
        config = TrainConfig.load(output_dir)
        values = config.to_json()
        values.update({key: value for key, value in given.items()})
        config = TrainConfig(**values)
    else:
        config = TrainConfig(**given)
    config.save()
    return config


def _run(args: argparse.Namespace) -> int:
    from training.pipeline import Pipeline

    config = config_from_args(args)
    pipeline = Pipeline(config)
    if args.step == "evaluate":
        result = pipeline.run_evaluate(args.model)
    else:
        result = getattr(pipeline, f"run_{args.step}")()
    if args.print_json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


def register(subparsers) -> None:
    """Add the ``train`` command and its steps to the ``patentmatch`` parser."""
    train = subparsers.add_parser(
        "train", help="domain-adapt a sentence encoder: vocabulary, MLM, sentence training",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    steps = train.add_subparsers(dest="step", metavar="STEP", required=True)
    descriptions = {
        "vocab": "learn WordPiece sub-words and extend the base vocabulary",
        "mlm": "continue masked-language-model training on titles and abstracts",
        "sbert": "train the sentence encoder with in-batch negatives",
        "evaluate": "evaluate the base and each finished step (or --model)",
        "all": "run vocab, mlm and sbert in order, skipping finished steps",
    }
    for step, help_text in descriptions.items():
        parser = steps.add_parser(step, help=help_text, description=help_text)
        _add_config_options(parser)
        parser.add_argument("--print-json", action="store_true",
                            help="print the step's metrics as JSON when it ends")
        if step == "evaluate":
            parser.add_argument("--model", default=None,
                                help="evaluate this model folder instead of the run's stages")
        parser.set_defaults(handler=_run, step=step)
