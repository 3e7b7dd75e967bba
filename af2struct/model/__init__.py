"""The network: trunk (MSA + pair representations), heads, MDS and the SE(3) refiner.

``network.Af2StructModel`` is the model (a config and a feature batch), ``alphafold2_pytorch.Alphafold2``
the same with alphafold2-pytorch's constructor and call; ``checkpoint.load_model`` loads weights safely; configs and
presets are in ``config``. Nothing is imported here (``import af2struct.model`` stays cheap).
"""
