"""AnomalyCLIP (Zanella et al., CVIU 2024) exactly as its official code computes it."""
