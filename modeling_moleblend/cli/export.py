"""``moleblend export``: a trained folder -> a Hub-ready folder (code files, auto_map, card), optionally pushed."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from ..hub import export_for_hub, push_folder_to_hub
from ..training.common import HubArguments, option
from .common import add_dataclass_arguments

NAME = "export"
HELP = "turn a trained folder into a Hub-ready one (loads with trust_remote_code alone), optionally push it"
DESCRIPTION = """\
Write a Hub-ready copy of a trained MoleBlend folder: model.safetensors, config.json (auto_map: AutoConfig,
AutoModel, AutoModelForSequenceClassification, AutoModelForPreTraining), preprocessor_config.json
(AutoFeatureExtractor), the flat .py code files and the README.md model card (kept, or generated from the run's
results with --regenerate_card), so that AutoModelForSequenceClassification.from_pretrained(ID,
trust_remote_code=True) works without this package. Never a pickle. Pushing uses HF_ENDPOINT and HF_TOKEN (or
--hub_token); the card is uploaded last, in its own commit.

examples:
  moleblend export --model_name_or_path out/model --output_dir hub/moleblend-esol
  moleblend export --model_name_or_path out/model --output_dir hub/moleblend-esol \\
      --push_to_hub --hub_model_id me/moleblend-esol --hub_tag v1
"""


@dataclass(kw_only=True)
class ExportArguments(HubArguments):
    hub_tag: str | None = option(None, "tag the pushed commit (e.g. v1)", "hub")
    commit_message: str = option("Upload MoleBlend model", "the push's commit message", "hub")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("export")
    group.add_argument("--model_name_or_path", required=True, type=Path, help="a trained (save_pretrained) folder")
    group.add_argument("--output_dir", required=True, type=Path, help="the repo folder to write")
    group.add_argument("--overwrite_output_dir", action="store_true", help="replace a non-empty OUTPUT_DIR")
    group.add_argument("--regenerate_card", action="store_true", help="write a new card even if the folder has one")
    add_dataclass_arguments(parser, ExportArguments)


def run(args: argparse.Namespace) -> int:
    from ..data import InputError

    if args.push_to_hub and not args.hub_model_id:
        raise InputError("--push_to_hub needs --hub_model_id")
    model_folder = args.model_name_or_path
    if not (model_folder / "config.json").is_file() and (model_folder / "model" / "config.json").is_file():
        model_folder = model_folder / "model"  # a finetune output folder: its selected model
    try:
        folder = export_for_hub(
            model_folder,
            args.output_dir,
            regenerate_card=args.regenerate_card,
            repo_id=args.hub_model_id,
            overwrite=args.overwrite_output_dir,
        )
    except (ValueError, FileExistsError) as error:
        raise InputError(str(error)) from error
    files = sorted(p.name for p in folder.iterdir())
    print(f"exported {model_folder} -> {folder}: {', '.join(files)}")
    if not args.push_to_hub:
        return 0
    info = push_folder_to_hub(
        folder,
        args.hub_model_id,
        private=args.hub_private_repo,
        revision=args.hub_revision,
        token=args.hub_token,
        commit_message=args.commit_message,
        tag=args.hub_tag,
    )
    print(f"pushed to {info.repo_url.repo_id} at commit {info.oid}: {info.commit_url}")
    print(
        "load it with: AutoModelForSequenceClassification.from_pretrained("
        f"{info.repo_url.repo_id!r}, revision={info.oid!r}, trust_remote_code=True)"
    )
    return 0
