"""The one package that imports both frameworks: weight porting, comparison, checkpoints, CLI."""
