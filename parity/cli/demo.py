"""`resnet-parity demo`: the built-in demonstration that `make demo` runs."""

from __future__ import annotations


def run(args) -> int:
    import resnet_torch

    from ..core import comparison, porting, testing

    print("resnet-parity demo: resnet50 with seeded random weights, PyTorch -> Keras -> PyTorch\n")
    torch_model = testing.randomize_torch(resnet_torch.resnet50(), seed=0)
    keras_model = porting.torch_to_keras(torch_model)
    back = porting.keras_to_torch(keras_model)
    source, returned = torch_model.state_dict(), back.state_dict()
    same = sum(bool((source[k] == returned[k]).all()) for k in source)
    print(f"round trip: {same} of {len(source)} tensors identical bit for bit\n")
    x = testing.random_images(torch_model.spec, 2, (224, 224))
    report = comparison.compare(torch_model, keras_model, x)
    print(report.table())
    return 0 if report.ok and same == len(source) else 1


def add_parser(sub):
    p = sub.add_parser("demo", help="the built-in demonstration run by `make demo`")
    p.set_defaults(func=run)
    return p
