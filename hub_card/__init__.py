"""Model-card generation for MoleBlend checkpoints (installed as ``modeling_moleblend.hub_card``)."""

from .model_card import CITATION, CardInfo, MetricSummary, build_model_card, card_body, card_data, write_model_card

__all__ = ["CITATION", "CardInfo", "MetricSummary", "build_model_card", "card_body", "card_data", "write_model_card"]
