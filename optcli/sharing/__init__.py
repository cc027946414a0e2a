"""Weight sharing math (pure array functions): scalar k-means (kmeans1d) and vector k-means
over rows, filters or kernels (vectors). The `share` step (steps/share.py) walks the layers."""
