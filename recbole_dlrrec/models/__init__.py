"""RecBole models: adapters from a RecBole Config and Dataset to the nn blocks.

dlrm.py    DLRM: Config and dataset fields -> nn/layers.py arches; BCE loss, predict
dlrrec.py  DLRREC: DLRM + a TextTower per side + SWING InfoNCE heads (nn/contrastive.py, swing/)
"""
