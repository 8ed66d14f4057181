"""RecBole models: adapters from a RecBole Config and Dataset to the nn blocks.

dlrm.py    DLRM: Config and dataset fields -> nn/layers.py arches; BCE loss, predict
dlrrec.py  DLRREC: DLRM + a TextTower per side + SWING InfoNCE heads (nn/contrastive.py, swing/)
text_fields.py  DCNV2Text / DeepFMText / WideDeepText: RecBole's models + frozen-PCA text fields
semantic_ids.py  item semantic IDs (residual k-means codes of train text) for DLRREC and those
"""
