"""Prediction: one target (pipeline), many targets (batch), plots."""
