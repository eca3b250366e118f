"""parity's first floor: what comparing the two frameworks needs and nothing more.

porting (weights by plan name, both ways), taps (the observed points), metrics (one definition
of each error), report (rows, bounds, verdicts), comparison (`compare`), training (the train-mode
step), testing (randomised weights, `assert_parity`), frameworks (both frameworks, imported in
the order that works). Imports resnet_spec, resnet_torch and resnet_tf, never a higher floor.
"""
