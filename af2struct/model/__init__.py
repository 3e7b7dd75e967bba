"""The network: trunk (MSA + pair representations), heads, MDS and the SE(3) refiner.

``network.Alphafold2`` is the model; ``checkpoint.load_model`` loads weights safely; configs and
presets are in ``config``. Nothing is imported here (``import af2struct.model`` stays cheap).
"""
