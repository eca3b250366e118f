"""parity's second floor: the files users have and the files we write.

errors (what is wrong with an input file), atomic (writing without ever leaving a partial or
overwritten file), checkpoints (PyTorch files, read without unpickling code), identify (the
architecture of a state_dict), keras_io and keras_archive (Keras files read and written),
loading (any source to the models it holds), convert (files from one framework to the other,
verified). Imports the core floor, never a higher one.
"""
