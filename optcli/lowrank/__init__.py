"""Low-rank factorization of linear layers: the SVD math (`svd`) apart from the graph rewrite
(`rewrite`); `optcli/steps/lowrank.py` walks the layers."""
