"""Model-card generation for MoleBlend checkpoints (installed as ``modeling_moleblend.hub_card``).

The generator itself (``ModelCardData`` metadata, eval results, training description) is built with the Hub
export; this package is where every script will get its card from.
"""
