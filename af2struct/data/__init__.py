"""Data: SidechainNet-format datasets, MSAs, features and training batches."""
