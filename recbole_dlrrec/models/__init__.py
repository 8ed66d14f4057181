"""RecBole models: adapters from a RecBole Config and Dataset to the nn arches (DLRM, DLRREC)."""
