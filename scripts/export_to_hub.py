#!/usr/bin/env python
"""Turn a trained MoleBlend folder into a Hub-ready repo folder, and optionally push it.

    python scripts/export_to_hub.py --model_name_or_path out/model --output_dir hub/moleblend-esol
    python scripts/export_to_hub.py --model_name_or_path out/model --output_dir hub/moleblend-esol \\
        --push_to_hub --hub_model_id me/moleblend-esol [--hub_private_repo] [--hub_revision dev] [--hub_tag v1]

The export holds model.safetensors, config.json (auto_map: AutoConfig, AutoModel,
AutoModelForSequenceClassification, AutoModelForPreTraining), preprocessor_config.json (AutoFeatureExtractor), the
flat .py code files and the README.md model card (kept, or generated with --regenerate_card), so that
`AutoModelForSequenceClassification.from_pretrained(ID, trust_remote_code=True)` works without this package.
Pushing uses HF_ENDPOINT and HF_TOKEN (or --hub_token); the card is uploaded last, in its own commit.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from modeling_moleblend.hub import export_for_hub, push_folder_to_hub


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model_name_or_path", required=True, type=Path, help="a trained (save_pretrained) folder")
    p.add_argument("--output_dir", required=True, type=Path, help="the repo folder to write")
    p.add_argument("--overwrite_output_dir", action="store_true")
    p.add_argument("--regenerate_card", action="store_true", help="write a new card even if the folder has one")
    hub = p.add_argument_group("hub")
    hub.add_argument("--push_to_hub", action="store_true")
    hub.add_argument("--hub_model_id", default=None, help="namespace/name of the Hub repo")
    hub.add_argument("--hub_private_repo", action="store_true", help="create the repo private (if it is new)")
    hub.add_argument("--hub_revision", default=None, help="branch to push to (created from main if missing)")
    hub.add_argument("--hub_tag", default=None, help="tag the pushed commit (e.g. v1)")
    hub.add_argument("--hub_token", default=None, help="default: HF_TOKEN or the saved login")
    hub.add_argument("--commit_message", default="Upload MoleBlend model")
    args = p.parse_args(argv)
    if args.push_to_hub and not args.hub_model_id:
        p.error("--push_to_hub needs --hub_model_id")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    folder = export_for_hub(
        args.model_name_or_path,
        args.output_dir,
        regenerate_card=args.regenerate_card,
        repo_id=args.hub_model_id,
        overwrite=args.overwrite_output_dir,
    )
    files = sorted(p.name for p in folder.iterdir())
    print(f"exported {args.model_name_or_path} -> {folder}: {', '.join(files)}")
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


if __name__ == "__main__":
    sys.exit(main())
